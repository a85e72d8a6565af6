"""certmon notifies agencies itself, by e-mail or webhook, so that the moment a server accepted the notice is the
``notified`` milestone, and the agency acknowledges through a link of its own.

This layer sits on ``store``: it composes the notice (``core.notices``), sends it, and records the outcome. It does
not count anything; its callers count from the outcome it returns.
"""
