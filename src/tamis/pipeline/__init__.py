"""Jobs that chain read -> measure -> decide -> write, resumably (local today, Ray-ready by design)."""
