"""Shared library of the sentiment-analyzer services: schemas, typed settings, AWS adapters, model bundle.

A library only: nothing here is a Lambda handler, and nothing here touches AWS at import time.
"""
