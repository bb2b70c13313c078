"""Model backends behind one interface (see base.py); chosen by spec strings."""
