"""nanoentropy: a small, readable RLVR trainer built around entropy control. train.py is the entry point."""
