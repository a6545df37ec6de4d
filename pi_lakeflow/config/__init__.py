"""Configuration: the settings, each declared once and bound by name (settings.py), and the client they make (connection.py)."""
