"""The tables: each declared once (registry.py), and the Arrow schemas their sources yield (schemas.py)."""
