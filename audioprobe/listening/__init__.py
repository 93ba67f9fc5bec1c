"""The paper's human study, built in: a local listening page, its ratings, and the calibration of the
judges' distance bands against them.

    runs/<run_id>/listening/
      trials.json        the sampled trials (stable, so a rater can resume; --resample redraws them)
      refs/<sha>.wav     copies of the reference clips the trials play: nothing outside the run is served
      ratings.jsonl      one line per answer: rater, trial, clip hashes, answer, time (append-only)
      calibration.json   band thresholds with bootstrap CIs, rater and judge agreement
"""
