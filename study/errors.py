"""The errors a trial's records can raise, in a module of their own: the pack runner and the
trial worker catch them without importing the tracking store (`study.tracking` raises them)."""


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used; says which URI and how to fix it."""


class ArtifactError(RuntimeError):
    """An upstream artifact is missing, truncated or fails its checksum."""


class MissingArtifact(LookupError):
    """An upstream run never wrote an optional artifact (`contract.OPTIONAL_ARTIFACTS`): an
    older record, not a damaged one, so the run stays valid."""


class UpstreamNotReady(RuntimeError):
    """A parent trial has no finished run yet (a scheduling error, or a lost record)."""


class UpstreamFailed(RuntimeError):
    """A parent trial diverged or was skipped: its children are recorded as skipped."""
