"""The research machinery: what turns the course's training loop into a study, and the study into records.

``bcdet_helpers`` has two jobs (issue #32). The **course core** -- everything outside this folder --
is what notebooks 01-04 teach from: the data, the model, the training loop, the metrics, the plots
and the exercises. **This subpackage** is the rest, which a student meets only from notebook 05 on:

* the cross-validated study and its ladders (:mod:`.study`), its statistics (:mod:`.stats`);
* the external test on BUS-BRA (:mod:`.external`), the acquisition-shift stress test (:mod:`.stress`,
  :mod:`.shifts`, :mod:`.resemblance`);
* tuning (:mod:`.tune`), planning and timing long jobs (:mod:`.plan`, :mod:`.pace`, :mod:`.long_job`);
* reproducing and publishing (:mod:`.reproduce`, :mod:`.report`, :mod:`.publish`, :mod:`.outputs`,
  :mod:`.slides`, :mod:`.recorded`);
* the ``bcdet`` command line (:mod:`.cli`, its handlers in :mod:`.commands`, :mod:`.commands_study`,
  :mod:`.commands_records`).

**The dependency points one way: research uses the core, the core never imports research** -- not
at module level, not inside a function. So a student reading ``bcdet_helpers/model.py`` or
``train.py`` can ignore this folder, and the core can be changed without running a study.
``tests/test_layout.py`` checks the rule.
"""
