"""One validated proxymod configuration, and the INI files written from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from ...errors import ConfigError
from ...paths import quote, safe_relative_dir
from ...problems import texts
from .ini import render_ini
from .schema import SCHEMA
from .sections import capped, sections_problems


@dataclass(frozen=True)
class ProxymodConfig:
    """One validated proxymod configuration, ``config_<number>`` of its event.

    ``sections`` holds the values exactly as the event gave them, in the canonical order of
    :data:`SCHEMA`; construction validates them and raises ConfigError if they are invalid.
    """

    number: int
    sections: Mapping[str, Mapping[str, str]]

    def __post_init__(self) -> None:
        problems: list[str] = []
        if isinstance(self.number, bool) or not isinstance(self.number, int) or self.number < 1:
            problems.append(f"config number {quote(self.number)} is not a positive integer")
        if not isinstance(self.sections, Mapping):
            problems.append(
                f"config sections must be a mapping, not {type(self.sections).__name__}"
            )
        else:
            found = sections_problems(f"proxymod.config_{self.number}", self.sections)
            problems.extend(texts(found))
        if problems:
            raise ConfigError(capped(problems))
        canonical = {
            section: MappingProxyType({key: self.sections[section][key] for key in keys})
            for section, keys in SCHEMA.items()
            if section in self.sections
        }
        object.__setattr__(self, "sections", MappingProxyType(canonical))

    @property
    def name(self) -> str:
        """``config_<number>``, the stem of this configuration's INI file."""
        return f"config_{self.number}"

    @property
    def runtime(self) -> int:
        """Seconds the model sleeps (0 .. MAX_RUNTIME_SECONDS)."""
        return int(self.sections["PROJECT"]["runtime"])

    @property
    def failure(self) -> int:
        """1 if the model must fail on purpose, else 0."""
        return int(self.sections["PROJECT"]["failure"])

    @property
    def in_dir(self) -> PurePosixPath | None:
        """The inputs' directory relative to the upload, or None without an INPUTS section."""
        inputs = self.sections.get("INPUTS")
        return None if inputs is None else safe_relative_dir(inputs["in_dir"], "in_dir")

    @property
    def in_file_one(self) -> str | None:
        """The first input file's name, or None without an INPUTS section."""
        inputs = self.sections.get("INPUTS")
        return None if inputs is None else inputs["in_file_one"]

    @property
    def in_file_two(self) -> str | None:
        """The second input file's name, or None without an INPUTS section."""
        inputs = self.sections.get("INPUTS")
        return None if inputs is None else inputs["in_file_two"]

    @property
    def out_dir(self) -> PurePosixPath:
        """Where the model writes, relative to the outputs directory."""
        return safe_relative_dir(self.sections["OUTPUTS"]["out_dir"], "out_dir")

    def ini_text(self) -> str:
        """The INI file with the values as the event gave them."""
        return render_ini(self.sections)

    def absolute_ini_text(self, inputs_dir: Path, outputs_dir: Path) -> str:
        """The INI a model reads: ``in_dir`` = ``inputs_dir``, ``out_dir`` under ``outputs_dir``.

        Both directories must be absolute. Raises ValueError if either is relative or if its
        path cannot be written to an INI file unchanged.
        """
        for label, directory in (("inputs_dir", inputs_dir), ("outputs_dir", outputs_dir)):
            if not directory.is_absolute():
                raise ValueError(f"{label} must be absolute, not {str(directory)!r}")
        sections = {section: dict(values) for section, values in self.sections.items()}
        if "INPUTS" in sections:
            sections["INPUTS"]["in_dir"] = str(inputs_dir)
        sections["OUTPUTS"]["out_dir"] = str(outputs_dir / self.out_dir)
        return render_ini(sections)
