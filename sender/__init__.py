"""Test campaigns: SMS with optional voice fallback, through Twilio or the sandbox.

``sender.api`` is the public surface (the CLI and the dashboard's "Send test campaign"
page call it); ``sender.cli`` is ``switchboard send``. See ``sender/README.md``.
"""
