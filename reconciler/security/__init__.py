"""Device credentials and the security policy of the LwM2M server (issue 12).

`credentials`: the PSK credentials file (identity -> key, endpoint), kept outside git;
`reloader`: re-reads it on SIGHUP and when it changes, keeping the last good set;
`policy`: which endpoints require PSK and the one rule that binds a DTLS identity to an
endpoint at Register. Of ours it imports only `model`; `lwm2m` (the DTLS transport),
`sources` (`fota validate --credentials`) and `serve` use it.
"""
