"""Plugins that ship with core. They register through entry points exactly like external ones."""
