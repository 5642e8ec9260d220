"""What the configuration layer announces, for the layers above it to act on.

Sent by integrations.services inside the action's transaction; uploads.apps connects to them.
"""

from django.dispatch import Signal

# An integration left Sandbox Mode (sender: Integration; integration=, actor=).
sandbox_left = Signal()
