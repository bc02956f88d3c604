"""churnguard: point-in-time churn prediction and retention-action lists."""

__version__ = "0.1.0"
