"""Drop-in APIs of the peers, served beside ours: Judge0 CE 1.13 at /judge0, Piston v2 at /piston.

Every request through them is an ordinary execution of ours (same auth, limits, admission and
audit log); only the shapes of requests, responses and errors are the peers'."""
