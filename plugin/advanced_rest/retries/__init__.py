"""Automatic retries (AdvancedRest.Retries): failed jobs run again on their own, durably, shown in the `Retry` state.

    core_jobs.py   the core's jobs: which failures are retried, the table of jobs in Retry (saved in a global
                   property before anything is answered or done), the thread that resubmits them at their
                   time, the actions on them, and how the plugin shows them (CoreRetries.view)
"""
