"""The sandbox's Twilio REST API, cut along its seams.

``routing`` turns an HTTP request into a call on a resource; ``auth`` says which account a
request may act on; ``faults`` injects the seeded errors, drops and delays; ``accounts``,
``messages`` and ``calls`` are the resources (``listing`` pages any of them, ``store`` holds
their columns); ``callbacks`` POSTs status callbacks. ``switchboard.sandbox.server.SandboxServer``
wires them together and is the public entry point.
"""
