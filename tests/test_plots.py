"""proxymod.plots: the charts of a real run, which CSVs go where, and the guards."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any

from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.proxymod import plots
from pacifica.dispatcher_proxymod.proxymod.config import parse_configs
from pacifica.dispatcher_proxymod.proxymod.handler import handle
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.transfer import make_transfer

NS = {"svg": "http://www.w3.org/2000/svg"}
MODELS = ("loose_coupling", "tight_coupling", "tight_coupling_twoway")


def _configs(count: int, out_dirs: list[str]) -> Any:
    values = {"proxymod.configs_count": str(count)}
    for number, out_dir in enumerate(out_dirs, start=1):
        prefix = f"proxymod.config_{number}"
        values |= {
            f"{prefix}.PROJECT.runtime": "0",
            f"{prefix}.PROJECT.failure": "0",
            f"{prefix}.OUTPUTS.out_dir": out_dir,
        }
    return parse_configs(values, 10)


def test_the_example_run_has_a_chart_per_model_and_config(
    settings: Settings, example_event: dict[str, Any]
) -> None:
    event = parse_http({"Content-Type": "application/json"}, json.dumps(example_event).encode())
    result = handle(event, "task-plots", settings, make_transfer(settings))
    assert result.failure is None and result.delivery is not None
    names = sorted(chart.file_name for chart in result.charts)
    assert names == sorted(f"{m}__config_{n}.svg" for m in MODELS for n in (1, 2, 3))
    delivered = Path(result.delivery.location)
    assert sorted(p.name for p in (delivered / "plots").iterdir()) == names
    for chart in result.charts:
        assert [s.label for s in chart.series] == ["output1", "output2"]
        root = ET.fromstring((delivered / "plots" / chart.file_name).read_text())  # noqa: S314
        assert len(root.findall(".//svg:path[@class='series']", NS)) == 2
    loose = next(c for c in result.charts if c.file_name == "loose_coupling__config_2.svg")
    assert loose.note == "2 series from outputs/loose_coupling_model_2_outputs"
    assert [x for x, _ in loose.series[0].points] == list(range(2010, 2101, 5))
    # a tight coupling writes one file per year: those files are one series over the years
    tight = next(c for c in result.charts if c.file_name == "tight_coupling__config_1.svg")
    assert [x for x, _ in tight.series[0].points] == [2010, 2015, 2020, 2025]
    manifest = json.loads((delivered / "manifest.json").read_text())
    assert {o["path"] for o in manifest["outputs"]} >= {f"plots/{name}" for name in names}


def test_series_names() -> None:
    folder = "tight_coupling_model_1_outputs"
    assert plots.series_name("output1_tight_coupling_model_1_2010", folder) == "output1"
    assert plots.series_name("output2_loose_model_2010_2100", "loose_model_outputs") == "output2"
    assert plots.series_name("summary_tight_coupling_model_1", folder) == "summary"
    assert plots.series_name("anything", "other") == "anything"


def test_configs_of_output_folders() -> None:
    shared = _configs(3, ["outputs", "outputs", "outputs"])
    assert plots.config_of(PurePosixPath("outputs/m_model_2_outputs"), shared) == "config_2"
    assert plots.config_of(PurePosixPath("outputs/m_outputs"), shared) == "config_1"
    distinct = _configs(2, ["a", "b/c"])
    assert plots.config_of(PurePosixPath("b/c/m_model_1_outputs"), distinct) == "config_2"
    assert plots.config_of(PurePosixPath("a"), distinct) == "config_1"
    assert plots.config_of(PurePosixPath("elsewhere/x"), distinct) == "outputs"


def test_links_are_never_read_and_planted_plots_are_replaced(tmp_path: Path) -> None:
    result = tmp_path / "result"
    folder = result / "outputs" / "m_model_1_outputs"
    folder.mkdir(parents=True)
    secret = tmp_path / "secret.csv"
    secret.write_text("year,value\n1,42\n")
    os.symlink(secret, folder / "output1_m_model_1_1.csv")
    os.link(secret, folder / "output2_m_model_1_1.csv")
    (folder / "output3_m_model_1_1.csv").write_text("year,value\n2010,1\n2015,2\n")
    planted = result / "plots"
    os.symlink(tmp_path, planted)
    before: plots.Snapshot = {}
    written = plots.changed(before, plots.snapshot(result))
    assert written == [PurePosixPath("outputs/m_model_1_outputs/output3_m_model_1_1.csv")]
    charts = plots.collect(result, _configs(1, ["outputs"]), [plots.ModelOutputs("m", written)])
    (chart,) = charts
    assert [s.label for s in chart.series] == ["output3"]
    plots.write_plots(result, charts)
    assert not planted.is_symlink() and (planted / "m__config_1.svg").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result", "secret.csv"]
