"""Command-line training and evaluation built on ``core``."""
