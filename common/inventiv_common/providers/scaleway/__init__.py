"""The Scaleway provider (provider.py), its SDK calls (calls.py) and errors (errors.py)."""
