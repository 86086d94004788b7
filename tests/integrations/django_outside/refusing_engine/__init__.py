"""A user's engine built on sessionward's: its ``is_usable()`` can be told to say no."""
