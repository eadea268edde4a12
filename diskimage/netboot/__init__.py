"""Network boot: what ``pxeconf`` configures and serves.

    site        the site file a person edits (menus, jobs, machines, per-server
                overrides): the model, load and check, with file/line/field
                errors; sitefile (its lines and grammar), siteedit (edits
                that keep every comment, locked and atomic), sitetemplate
                (the commented file init writes)
    macaddr     MAC addresses: one spelling, and the file names loaders ask for
    rootpath    a request's name resolved inside the boot root, or refused
    bootroot    `pxeconf init`: the loaders copied from Debian's packages,
                each file's package and version recorded
    configs     pxelinux, GRUB and iPXE configs: the menu and each machine's
    dnsmasqconf the dnsmasq configuration (proxyDHCP or full DHCP), checked
                with `dnsmasq --test`
    dnsmasqproc dnsmasq as a child process of `pxeconf serve`
    tftp        the built-in TFTP server (RFC 1350, 2347-2349, 7440), read-only
    httpd       the HTTP server: files (HEAD, Range), the status API, the
                console; httpapi (the API's requests), httprange (the Range
                header)
    jobs        one-shot jobs as leases: what each machine boots next;
                machinestate (one machine's state and its records), journal
                (the append-only file of every state change), progress
                (rate and ETA of a job), status (`pxeconf status`: the
                journal read without the server)
    console     the web console's page
    client      the imaging environment's reports to the server it booted from
    serve       `pxeconf serve`: TFTP, HTTP and dnsmasq started, watched and
                stopped together

Like the rest of the library it raises and never prints: servers take a
``log`` callable for their one-line records.
"""
