"""SIP signalling (sans-I/O core plus one asyncio adapter) and RTP media."""
