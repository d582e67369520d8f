"""Jewelry studio: procedural, physically based product photos with exact labels (Mitsuba 3).

An optional extra (``pip install jewelsearch[studio]``); nothing else in the
package imports it.
"""
