"""Judge0 CE 1.13.1's fixed vocabulary: its language ids (mapped onto this host's runtimes), its
statuses, its configuration keys and its `about`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codeexec.domain.model import Limits
from codeexec.ports.sandbox import Language
from codeexec_server.limits import LimitsDocument

JUDGE0_VERSION = "1.13.1"
STATUSES = (
    (1, "In Queue"),
    (2, "Processing"),
    (3, "Accepted"),
    (4, "Wrong Answer"),
    (5, "Time Limit Exceeded"),
    (6, "Compilation Error"),
    (7, "Runtime Error (SIGSEGV)"),
    (8, "Runtime Error (SIGXFSZ)"),
    (9, "Runtime Error (SIGFPE)"),
    (10, "Runtime Error (SIGABRT)"),
    (11, "Runtime Error (NZEC)"),
    (12, "Runtime Error (Other)"),
    (13, "Internal Error"),
    (14, "Exec Format Error"),
)
STATUS_NAMES = dict(STATUSES)
KB = 1024


@dataclass(frozen=True)
class Judge0Language:
    """A Judge0 CE language id and what runs it here."""

    id: int
    label: str  # Judge0's name with `{}` where the version goes
    ours: str  # our language name
    source_file: str  # the file name Judge0 gives the source

    def name(self, version: str) -> str:
        return self.label.format(version)


# Judge0 CE's ids for the languages this platform can run. 52 is listed beside 54 because the
# official SDK resolves its C++ alias to 52; both run the host's g++.
LANGUAGES = (
    Judge0Language(46, "Bash ({})", "bash", "script.sh"),
    Judge0Language(50, "C (GCC {})", "c", "main.c"),
    Judge0Language(52, "C++ (GCC {})", "cpp", "main.cpp"),
    Judge0Language(54, "C++ (GCC {})", "cpp", "main.cpp"),
    Judge0Language(60, "Go ({})", "go", "main.go"),
    Judge0Language(62, "Java (OpenJDK {})", "java", "Main.java"),
    Judge0Language(63, "JavaScript (Node.js {})", "javascript", "script.js"),
    Judge0Language(68, "PHP ({})", "php", "script.php"),
    Judge0Language(71, "Python ({})", "python", "script.py"),
    Judge0Language(72, "Ruby ({})", "ruby", "script.rb"),
    Judge0Language(73, "Rust ({})", "rust", "main.rs"),
    Judge0Language(85, "Perl ({})", "perl", "script.pl"),
)
BY_ID = {lang.id: lang for lang in LANGUAGES}


def available(ours: Sequence[Language]) -> list[tuple[Judge0Language, Language]]:
    """Each Judge0 language this host runs, with the runtime that runs it (the host's first,
    its default, when it has several versions)."""
    found = []
    for j0 in LANGUAGES:
        runtime = next((lang for lang in ours if lang.name == j0.ours), None)
        if runtime is not None:
            found.append((j0, runtime))
    return found


def resolve(language_id: int, ours: Sequence[Language]) -> tuple[Judge0Language, Language] | None:
    return next(((j, r) for j, r in available(ours) if j.id == language_id), None)


def id_for(language: str) -> int | None:
    """The Judge0 id of one of our languages (for executions made through our own API)."""
    return next((j.id for j in LANGUAGES if j.ours == language), None)


def language_out(j0: Judge0Language, runtime: Language) -> dict[str, Any]:
    # Judge0 shows its shell commands here; ours are argv lists built per run, so these say
    # what runs the file rather than a command to copy.
    compiled = f"{runtime.name} {runtime.version} compiler, options: %s, source: {j0.source_file}"
    return {
        "id": j0.id,
        "name": j0.name(runtime.version),
        "is_archived": False,
        "source_file": j0.source_file,
        "compile_cmd": compiled if runtime.compiled else None,
        "run_cmd": f"{runtime.name} {runtime.version}: {j0.source_file}",
    }


@dataclass(frozen=True)
class Judge0Config:
    """What /config_info reports and what submissions are checked against."""

    defaults: Limits
    maxima: Limits
    max_queue_size: int
    callbacks_max_tries: int = 3
    callbacks_timeout: float = 5.0
    max_cpu_extra_time: float = 5.0
    stack_limit: int = 64000
    max_stack_limit: int = 128000
    max_extract_size: int = 10240  # KB of additional files, unzipped
    max_submission_batch_size: int = 20

    @classmethod
    def of(cls, document: LimitsDocument) -> Judge0Config:
        maxima = document.max_resource_limits
        fields = {name: min(value, getattr(maxima, name)) for name, value in Limits()}
        return cls(Limits(**fields), maxima, document.max_queue)

    def info(self) -> dict[str, Any]:
        d, m = self.defaults, self.maxima
        return {
            "maintenance_mode": False,
            "enable_wait_result": True,
            "enable_compiler_options": True,
            "allowed_languages_for_compile_options": [],
            "enable_command_line_arguments": True,
            "enable_submission_delete": False,
            "enable_callbacks": True,
            "callbacks_max_tries": self.callbacks_max_tries,
            "callbacks_timeout": self.callbacks_timeout,
            "enable_additional_files": True,
            "max_queue_size": self.max_queue_size,
            "cpu_time_limit": d.cpu_time_s,
            "max_cpu_time_limit": m.cpu_time_s,
            "cpu_extra_time": 0.0,
            "max_cpu_extra_time": self.max_cpu_extra_time,
            "wall_time_limit": d.wall_time_s,
            "max_wall_time_limit": m.wall_time_s,
            "memory_limit": d.memory_bytes // KB,
            "max_memory_limit": m.memory_bytes // KB,
            "stack_limit": self.stack_limit,
            "max_stack_limit": self.max_stack_limit,
            "max_processes_and_or_threads": d.processes,
            "max_max_processes_and_or_threads": m.processes,
            "enable_per_process_and_thread_time_limit": False,
            "allow_enable_per_process_and_thread_time_limit": False,
            "enable_per_process_and_thread_memory_limit": False,
            "allow_enable_per_process_and_thread_memory_limit": False,
            "max_file_size": d.file_size_bytes // KB,
            "max_max_file_size": m.file_size_bytes // KB,
            "number_of_runs": 1,
            "max_number_of_runs": 1,
            "redirect_stderr_to_stdout": False,
            "max_extract_size": self.max_extract_size,
            "enable_batched_submissions": True,
            "max_submission_batch_size": self.max_submission_batch_size,
            "submission_cache_duration": 0.0,
            "use_docs_as_homepage": False,
            "allow_enable_network": False,
            "enable_network": False,
        }


ABOUT = {
    "version": JUDGE0_VERSION,
    "homepage": "https://github.com/judge0/judge0",
    "source_code": "https://github.com/judge0/judge0",
    "maintainer": "codeexec (serving the Judge0 CE 1.13.1 API)",
}
