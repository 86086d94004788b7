"""Django's own engines with sessionward's timeouts, socket check and session names."""
