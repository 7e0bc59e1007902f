"""A model repo's models: factories that build them, with no test code anywhere."""
