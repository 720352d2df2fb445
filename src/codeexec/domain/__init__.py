"""The pure domain of codeexec: events, the execution aggregate, coordinator policy, saga."""
