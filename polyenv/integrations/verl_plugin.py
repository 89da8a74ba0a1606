"""verl's plugin entry point (``verl.plugins`` group): importing it registers polyenv's estimators and reward
manager in the importing process (see :mod:`polyenv.integrations.verl`)."""

from polyenv.integrations.verl import _plugin

_plugin()
