"""Reporters render model reports; they hold no logic about what is wrong."""
