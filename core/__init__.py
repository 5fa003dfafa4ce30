"""switchboard.core: the bottom layer every part imports and that imports none of them.

Settings, the base user error, Twilio credentials and clients, segments/encoding, the error
catalogue, phone-number facts and paths to packaged data. See docs/ARCHITECTURE.md.
"""
