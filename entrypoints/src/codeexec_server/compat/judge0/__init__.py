"""Judge0 CE 1.13.1's API, served at /judge0 over codeexec's runtime."""
