"""Keras architectures for expression recognition, one module each, behind one registry."""
