"""The training page and dashboard.jobs: background training, the queue, stopping from any page,
settings kept across pages, the newest run shown, saving under a name (never a path)."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.dashboard import APP, TIMEOUT, assert_clean, open_page, rows, titled
from streamlit.testing.v1 import AppTest

from core import load_default
from core.text.markdown import escaped
from core.io import models_dir
from core.train.settings import TrainSettings
from dashboard import jobs, runs
from dashboard.navigation import OVERVIEW


@pytest.fixture(autouse=True)
def models_folder(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv(models_dir.ROOT_VARIABLE, str(folder))
    yield folder
    for job in list(jobs.QUEUE.running) + list(jobs.QUEUE.waiting):  # no training outlives its test
        job.request_stop()
        job.ended.wait(TIMEOUT)


def start(at: AppTest, steps: int = 3, **settings) -> jobs.TrainingJob:
    """Set the steps (and other settings by widget name), press Start; the session's job."""
    at.number_input(key="train_steps").set_value(steps)
    for name, value in settings.items():
        widget = at.checkbox(key=f"train_{name}") if isinstance(value, bool) else at.number_input(key=f"train_{name}")
        widget.set_value(value)
    at.button(key="train_start").click().run()
    assert_clean(at)
    return at.session_state[jobs.JOB_KEY]


def finish(at: AppTest, job: jobs.TrainingJob) -> AppTest:
    assert job.ended.wait(TIMEOUT)
    at.run()
    assert_clean(at)
    return at


def buttons(at: AppTest, label: str) -> list:
    return [button for button in at.button if button.label == label]


# --- the run in the background ---------------------------------------------------------------------

def test_training_runs_in_the_background_with_one_stop_button_on_every_page(app):
    open_page(app, "training")
    job = start(app, steps=1000, batch_size=64)
    assert job.progress().active
    assert len(buttons(app, "Stop")) == 1  # one Stop, in the sidebar
    assert app.button(key="train_start").proto.disabled  # Start during a run does nothing
    app.switch_page(OVERVIEW.script).run()
    assert_clean(app)
    assert any("Training run 1" in element.value or "run 1 is waiting" in element.value for element in app.markdown)
    app.button(key="train_stop").click().run()  # stopped from another page
    finish(app, job)
    assert "you pressed Stop" in job.run.stop_reason
    assert len(job.run.records) < 1000
    assert app.session_state["trained_model_id"] == "run 1"
    assert not buttons(app, "Stop")


def test_a_second_training_waits_in_the_queue_and_can_cancel(app, monkeypatch):
    monkeypatch.setenv("GLASSBOX_MAX_TRAININGS", "1")
    open_page(app, "training")
    first = start(app, steps=1000, batch_size=64)
    other = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    other.run()
    open_page(other, "training")
    second = start(other, steps=3)
    assert second.progress().status == "queued" and second.progress().position == 1
    assert any("place 1" in element.value for element in other.markdown)
    assert buttons(other, "Cancel")
    other.button(key="train_stop").click().run()
    assert_clean(other)
    assert second.status == "cancelled"
    assert any("taken out of the queue" in element.value for element in other.info)
    assert "trained_model" not in other.session_state
    first.request_stop()
    finish(app, first)


def test_the_newest_run_is_shown_and_two_runs_have_readable_legends(app):
    open_page(app, "training")
    finish(app, start(app, steps=2))
    finish(app, start(app, steps=3))
    assert app.selectbox(key=runs.SHOWN_RUN_KEY).value == "run 2"
    assert any("after run 2" in element.value for element in app.subheader)
    series = {row["series"] for row in rows(titled(app, "^Loss of every run"))}
    assert {"run 1 · train", "run 2 · train"} <= series
    assert {"run 1 · validation", "run 2 · validation"} & series


def test_a_run_that_makes_the_model_worse_is_flagged(app):
    open_page(app, "training")
    job = start(app, steps=30, from_scratch=False, lr_full=1.0)  # the trained default model, far too large a rate
    finish(app, job)
    assert any("worse" in element.value or "diverged" in element.value for element in app.warning)


def test_training_starts_from_a_fresh_model_by_default_and_settings_survive_other_pages(app):
    open_page(app, "training")
    assert app.checkbox(key="train_from_scratch").value is True
    app.number_input(key="train_steps").set_value(7).run()
    app.number_input(key="train_batch_size").set_value(5).run()
    app.switch_page(OVERVIEW.script).run()
    open_page(app, "training")
    assert app.number_input(key="train_steps").value == 7
    assert app.number_input(key="train_batch_size").value == 5


def test_settings_are_capped(app):
    open_page(app, "training")
    assert app.number_input(key="train_steps").max == 1000
    assert app.number_input(key="train_batch_size").max == 64


def test_a_gpt2_family_model_is_not_trained_and_the_page_says_why(app, models_folder):
    from helpers.gpt2 import small_gpt2

    small_gpt2(models_folder / "tiny-gpt2")
    app.run()
    app.selectbox(key="model_picker").set_value("tiny-gpt2").run()
    open_page(app, "training")
    assert any("Training is not offered for this model" in element.value and "BPE" in element.value
               for element in app.info)
    assert not buttons(app, "Start")


# --- saving ---------------------------------------------------------------------------------------

def test_saving_takes_a_name_never_a_path_and_never_overwrites(app, models_folder):
    open_page(app, "training")
    assert not [box for box in app.text_input if "directory" in box.label.lower()]
    finish(app, start(app, steps=2))
    assert any("reloading or closing the page loses it" in element.value for element in app.info)
    app.text_input(key="train_save_name").set_value("mine")
    app.button[[button.label for button in app.button].index("Save on this server")].click().run()
    assert_clean(app)
    assert models_dir.checkpoint_names() == ["mine"]
    assert (models_folder / "mine" / "history.json").is_file()
    assert any("Saved as 'mine'" in element.value for element in app.success)
    assert all(str(models_folder) not in element.value for element in app.success)
    app.text_input(key="train_save_name").set_value("mine")
    app.button[[button.label for button in app.button].index("Save on this server")].click().run()
    assert any("already exists" in element.value and escaped("mine-2") in element.value for element in app.warning)
    app.text_input(key="train_save_name").set_value("../../etc")
    app.button[[button.label for button in app.button].index("Save on this server")].click().run()
    assert any("not allowed" in element.value for element in app.warning)
    assert models_dir.checkpoint_names() == ["mine"]
    (download,) = [button for button in app.download_button if button.label == "Download as zip"]
    assert download.proto.deferred_file_id and not download.proto.url  # the zip is built only when clicked


# --- the queue and the worker, without Streamlit ------------------------------------------------------

def small_job(steps: int, number: int = 1, session: str = "s") -> jobs.TrainingJob:
    return jobs.TrainingJob(session, load_default(), TrainSettings(mode="head", steps=steps, batch_size=4,
                                                                   lr=0.01, eval_every=steps), number)


def test_the_queue_runs_at_most_the_limit_and_starts_the_next_one(monkeypatch):
    monkeypatch.setenv("GLASSBOX_MAX_TRAININGS", "1")
    queue = jobs.TrainingQueue(alive=lambda session: True)
    first, second = small_job(1000, 1), small_job(2, 2)
    queue.submit(first)
    queue.submit(second)
    assert queue.counts() == (1, 1) and queue.position(second) == 1
    first.request_stop()
    assert first.ended.wait(TIMEOUT) and second.ended.wait(TIMEOUT)
    assert first.status == second.status == "finished"
    assert len(second.run.records) == 2 and second.run.heldout is not None


def test_a_closed_sessions_training_stops_and_its_queued_one_never_starts(monkeypatch):
    monkeypatch.setenv("GLASSBOX_MAX_TRAININGS", "1")
    open_sessions = {"a", "b"}
    queue = jobs.TrainingQueue(alive=lambda session: session in open_sessions)
    running, waiting = small_job(1000, 1, "a"), small_job(5, 2, "b")
    queue.submit(running)
    queue.submit(waiting)
    open_sessions.clear()  # both browsers closed
    assert running.ended.wait(TIMEOUT) and waiting.ended.wait(TIMEOUT)
    assert "session closed" in running.run.stop_reason
    assert waiting.status == "cancelled" and not waiting.run.records



def test_the_heldout_table_is_what_heldout_scores_scored():
    """The before/after table reads heldout_scores' own predictions: its accuracy is the score's."""
    from core.model.model import Model
    from core.model.params import init_params
    from core.text.corpus import heldout_scores

    trained = load_default()
    fresh = Model(trained.config, init_params(trained.config, 1), trained.tokenizer)
    table = runs.heldout_table(fresh, trained)
    pairs = list(zip(table["prompt"], table["expected"]))
    for column, model in (("before", fresh), ("after", trained)):
        scores = heldout_scores(model, pairs)
        assert list(table[column] == table["expected"]) == scores["correct"]
    assert (table["before"] != table["after"]).any()


def test_the_server_refuses_to_train_models_over_its_size_cap():
    small = load_default()
    large = type("Large", (), {"tokenizer": small.tokenizer,
                               "params": {"w": np.zeros(jobs.MAX_TRAINABLE_PARAMETERS + 1, dtype=np.float32)}})()
    assert jobs.training_refusal(small) is None
    assert "5,000,000" in jobs.training_refusal(large) and "5,000,000" in jobs.size_refusal(large)
