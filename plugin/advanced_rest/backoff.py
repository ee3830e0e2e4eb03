"""When to try again, for everything the plugin tries again on its own (webhook deliveries, job retries): pure.

A `policy` is any object with backoff_seconds, max_backoff_seconds, max_attempts and max_age_hours
(settings.Webhook, settings.RetryPolicy)."""


def delay(attempts, policy, random):
    """Seconds before the next attempt after `attempts` failed ones: doubling from the policy's BackoffSeconds up
    to its MaxBackoffSeconds, each drawn in [half, all] of that (jitter; `random()` in [0, 1))."""
    longest = min(policy.max_backoff_seconds, policy.backoff_seconds * 2 ** max(0, attempts - 1))
    return longest * (0.5 + 0.5 * random())


def gives_up(attempts, first, now, policy):
    """Whether what failed `attempts` times, the first time (or made) at `first`, is failed for good at `now`
    (seconds since the epoch)."""
    return attempts >= policy.max_attempts or now - first >= policy.max_age_hours * 3600
