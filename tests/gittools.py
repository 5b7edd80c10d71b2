"""Git for tests: an identity and no user or system configuration."""

from __future__ import annotations

import os

#: environment for git commands in tests: commits work on a machine without a git
#: identity, and the user's own configuration (hooks, signing, ...) stays out
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
