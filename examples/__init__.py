"""The example campaign (campaign.toml, recipients.csv, test_numbers.txt), shipped as ``switchboard.examples``.

``switchboard send examples/campaign.toml`` runs it from a checkout; the dashboard's Send page opens it
through ``importlib.resources`` so an installed wheel has it too.
"""
