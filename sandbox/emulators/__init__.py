"""Local stand-ins for the vendor APIs, on 127.0.0.1, each following the vendor's public docs.

Mixpanel's ``/import`` (:mod:`.mixpanel_import`), its query API for cohorts
(:mod:`.mixpanel_query`) and its cohort-sync webhook pushes (:mod:`.mixpanel_cohort_sync`),
Braze's REST API (:mod:`.braze`), and the HTTP server with fault injection they share
(:mod:`.server`).
"""
