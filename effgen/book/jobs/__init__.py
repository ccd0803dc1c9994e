"""The paper profile's long jobs, run outside the notebooks into the chapters' own run folders.

The paper profile is days of CPU here, computed across sessions that each end without warning. Its
chapters train their runs one after another in one kernel; these jobs do the same work ahead of them,
one single-threaded process each, and every one is idempotent (a finished run reloads, a cached set is
only hashed, a frozen chapter is skipped), so the same command continues next session:

* ``gan_runs``: chapter 04's DCGANs and chapter 06's modern, ablation and winner runs (``effgen jobs gan``);
* ``pilot_runs``: chapter 06's generator pilots, their reseeds and the winner's leave-one-out (``effgen jobs pilots``);
* ``fid_references``: the real-image FID statistics of chapters 05 and 06 (``effgen jobs fid-references``);
* ``queue``: all of the profile's work in order on a fixed number of workers (``effgen jobs queue``);
* ``values``: a chapter's parameter values for a profile, as its execution would see them.

Each builds its runs with the calls the chapters make, so the chapters find the results and do not
compute them again.
"""
