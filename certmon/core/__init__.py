"""The domain, pure: SLA rules, policy, periods, models, satisfaction, export and report content, alert records."""
