"""The bureau's rules as plain functions: scoring, grading, warning lights and sampling.

Every threshold comes in as an argument (from settings an administrator edits); the
defaults in `defaults.py` are the ones domain.md gives.
"""
