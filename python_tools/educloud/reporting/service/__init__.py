"""The illicit-content report service (charter C9): a public form and a moderation API.

Self-contained: the standard library, psycopg2 and PyYAML only, relative imports only.
The `reporting` role copies this directory to /opt/educloud-reports/educloud_reports/
and runs it with Debian 12's python3, python3-psycopg2, python3-yaml and gunicorn:

    EDUCLOUD_REPORTS_CONFIG=/etc/educloud/reports.yml \\
    gunicorn --chdir /opt/educloud-reports --bind 127.0.0.1:8090 \\
        educloud_reports.wsgi:application

Configuration (YAML, path from EDUCLOUD_REPORTS_CONFIG, default /etc/educloud/reports.yml;
a wrong file stops the service at start with the key at fault):

    database: {host, port, dbname, user, password_file}
        host may be a unix-socket directory (/var/run/postgresql) or omitted; password_file
        is optional (peer authentication over the socket needs none).
    smtp: {host, port, sender, moderators: [e-mails], starttls: bool}   the approved relay
    form_secret_file: path      32+ random characters: the HMAC key of the form's tokens
    form_token: {min_age_seconds: 3, max_age_seconds: 1800}
                                how old a form's token may be when posted (at most a day);
                                each token is good for one report, from the network it
                                was served to
    moderation_token_sha256: hex sha256 of the moderators' bearer token
    retention_days: int         retention.yml illicit_content_reports.retention_days
    public_base_path: /signalement
    platform_name: str          shown on the pages and in the mail
    privacy_url: /confidentialite
    platform_hosts: [names]     optional: host names a reported link may point to
                                (default: the Host the form was posted to)
    site_hosts: [names]         optional: the deployment's sites whose pages may post the
                                form (Origin / Referer https://<name>; default: the site the
                                form is posted to)
    max_body_bytes: 16384
    rate_limit: {per_address_per_hour: 5, global_per_hour: 200, ceiling_per_hour: 1000}
                                per client (IPv4 address, IPv6 /64); global at least 10
                                times per client; ceiling at least global
    trusted_proxies: [127.0.0.1]   X-Forwarded-For is honoured only from these

Endpoints (all under 127.0.0.1:8090, behind nginx):

    GET  /signalement              the French form (no script, no third-party resource)
    POST /signalement              a report: 403 from another site's page (Origin, else
                                   Referer, not one of the deployment's sites; none of
                                   them: accepted), 413 when Content-Length >
                                   max_body_bytes (the body is not read), 411 without
                                   Content-Length, 400 with the form and French reasons
                                   when malformed or its token is forged, expired, from
                                   another network or spent (nothing stored), 429 +
                                   Retry-After over a rate limit, else 200 with the
                                   reference (SIG-XXXXXX) and one mail to the moderators
    GET  /signalement/health       200 {"status": "ok"} / 503 when the database is down
    /moderation/api/...            bearer token (Authorization: Bearer ...) else 401:
      GET  reports?status=open|taken_down|dismissed|archived|all
      GET  reports/<id>            the report and its decisions
      POST reports/<id>/decision   JSON {action: takedown|dismiss|reopen, by, note,
                                   share_ids: [...], reopen: bool}; decisions are
                                   append-only rows; a decision on a closed report is 409
                                   unless reopen is true (or the action is reopen); on an
                                   archived report always 409
      GET  purge?before=YYYY-MM-DD {"due": n}: reports created before that day, not
                                   archived yet (retention's plan)
      POST purge                   archive the reports older than retention_days; with
                                   JSON {"before": "YYYY-MM-DD"}, those created before that
                                   day (00:00 UTC) if earlier: never a report younger than
                                   retention_days. Answers {cutoff, archived: [ids]}
      POST notify                  retry the moderators' mails still pending

Mail: a relay failure keeps the report with notify_pending; pending mails are retried
after the next accepted report and by POST /moderation/api/notify.

Rate limit: counts accepted reports of the last hour per client (its IPv4 address, its
IPv6 /64) and globally. Past global_per_hour a flood is on: each client may still send
one report an hour, so a few clients cannot lock everyone out; past ceiling_per_hour
nobody can (the database and the moderators' mailbox stay bounded). The address is never
stored: only an HMAC of the client with a random salt of the day (the salt is deleted the
next day; hashes are deleted after an hour). Refused posts use no quota and spend no token.

Everything a report holds is data, never markup: the pages escape it (html.escape), the
mail is plain text with control and format characters escaped (text.visible), the API
answers JSON; `educloud moderation` shows it the same way.

Archive (retention.yml at_expiry: archive): reference, dates, kind, reported link, status
and the decisions (action, by, when, share ids) are kept; the description, the reporter's
e-mail and the decisions' notes are blanked (NULL / ''), and archived_at is set.

Schema: created by the service itself on first use (CREATE ... IF NOT EXISTS, under an
advisory lock), in the database it is configured for: the role creates the database
`educloud_reports` owned by the role `educloud_reports` and nothing else.
"""
