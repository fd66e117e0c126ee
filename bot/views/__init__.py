"""Presentation: presenters build neutral Docs; renderers print or Block-Kit them."""
