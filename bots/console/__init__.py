"""The console adapter: the terminal as a platform, and the reference implementation."""
