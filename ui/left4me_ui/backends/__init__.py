"""The job backends (jobs.JobBackend): local runs ansible-runner here, awx asks a controller."""
