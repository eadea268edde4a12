"""dnsmasq's configuration: DHCP only (DNS off: port=0; no TFTP: pxeconf
serves TFTP and HTTP itself).

proxyDHCP, beside the site's own DHCP server (`dhcp-range=NET,proxy`):
dnsmasq hands out no addresses, only the boot answers, as pxe-service
lines (PXE clients take their file from the proxy offer's menu; dhcp-boot
is not what proxy mode is for).  Full DHCP, on an isolated network
(`dhcp-range=FIRST,LAST`): dhcp-boot lines, chosen by dhcp-match tags.

Who gets what:

    client                            file
    BIOS PXE (arch 0, x86PC)          pxelinux.0 (TFTP)
    UEFI x64 PXE (arch 7 BC_EFI and   snponly.efi (iPXE, TFTP), or with
      9 X86-64_EFI: both, firmwares     uefi="shim": shimx64.efi, which loads
      differ)                           grubx64.efi (Secure Boot)
    UEFI HTTP boot (arch 16, vendor   http://ADDR:PORT/snponly.efi
      class HTTPClient)                 (answered with vendor class HTTPClient)
    iPXE (user class "iPXE")          http://ADDR:PORT/boot.ipxe: straight to
                                        the script, never chain-loaded again
"""

import ipaddress
import os
import re
import tempfile

from ..errors import InputError, ToolError
from ..host import tools

UEFI_LOADERS = {"ipxe": "snponly.efi", "shim": "shimx64.efi"}
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")


def _address(text, what="server address"):
    try:
        return ipaddress.IPv4Address(str(text).strip())
    except ValueError:
        raise InputError(f"{text!r}: not an IPv4 {what}") from None


def _interface(name):
    if name is None:
        return []
    if not _INTERFACE.match(name):
        raise InputError(f"{name!r}: not an interface name")
    return [f"interface={name}", "bind-dynamic"]


def _port(port):
    if not isinstance(port, int) or not 0 < port < 65536:
        raise InputError(f"{port!r}: not a port (1-65535)")
    return port


def _url(server, http_port, name):
    port = "" if http_port == 80 else f":{http_port}"
    return f"http://{server}{port}/{name}"


def _head(mode, server, interface):
    return [f"# dnsmasq configuration written by pxeconf ({mode}); "
            f"boot server {server}",
            "# no DNS: only DHCP and its boot answers",
            "port=0",
            "no-resolv",
            "no-hosts",
            "log-dhcp",
            *_interface(interface),
            # iPXE says so in its user class (option 77)
            "dhcp-userclass=set:ipxe,iPXE",
            "dhcp-match=set:efi64,option:client-arch,7",
            "dhcp-match=set:efi64,option:client-arch,9",
            "dhcp-match=set:efihttp,option:client-arch,16",
            "dhcp-vendorclass=set:efihttp,HTTPClient"]


#: how each client of answers() is told apart: in proxy mode, the
#: pxe-service lines (tag, client system architecture, menu text) ...
_PROXY = {
    "bios": [("!ipxe", "x86PC", "Network boot (BIOS)")],
    "uefi": [("!ipxe", csa, "Network boot (UEFI)")
             for csa in ("X86-64_EFI", "BC_EFI")],     # arch 9 and 7
    "uefi-http": [("!ipxe", "16", "Network boot (UEFI HTTP)")],
    "ipxe": [("ipxe", csa, "iPXE") for csa in ("x86PC", "X86-64_EFI",
                                                 "BC_EFI")],
}
#: ... and in full DHCP, the tags of its dhcp-boot line (set by _head).
_DHCP = {
    "bios": "tag:!ipxe,tag:!efi64,tag:!efihttp",
    "uefi": "tag:!ipxe,tag:efi64",
    "uefi-http": "tag:!ipxe,tag:efihttp",
    "ipxe": "tag:ipxe",
}


def answers(server, http_port=80, uefi="ipxe"):
    """Who gets what (the table above), the same in both modes:
    [(client, file or URL)] for the clients "bios", "uefi", "uefi-http"
    and "ipxe"; proxy_config and dhcp_config only spell it differently."""
    efi = _uefi(uefi)
    url = _url(server, _port(http_port), "")
    return [("bios", "pxelinux.0"), ("uefi", efi),
            ("uefi-http", f"{url}snponly.efi"), ("ipxe", f"{url}boot.ipxe")]


def proxy_config(site, server_address, network, interface=None,
                 http_port=80, uefi="ipxe"):
    """proxyDHCP for `network` ("10.0.0.0/24") beside the site's DHCP
    server, every boot answer naming `server_address`."""
    server = _address(server_address)
    try:
        net = ipaddress.IPv4Network(str(network), strict=False)
    except ValueError:
        raise InputError(f"{network!r}: not an IPv4 network (e.g. "
                         f"10.0.0.0/24)") from None
    if server not in net:
        raise InputError(f"{server}: not in the network {net}")
    lines = _head("proxyDHCP", server, interface) + [
        f"dhcp-range={net.network_address},proxy,{net.netmask}",
        # HTTP boot clients say HTTPClient where PXE says PXEClient
        "dhcp-pxe-vendor=PXEClient,HTTPClient",
        "pxe-prompt=\"Network boot\",0"]
    for client, name in answers(server, http_port, uefi):
        for tag, csa, text in _PROXY[client]:
            lines.append(f"pxe-service=tag:{tag},{csa},\"{text}\",{name},"
                         f"{server}")
    return "\n".join(lines) + "\n"


def dhcp_config(site, server_address, first, last, interface=None,
                http_port=80, uefi="ipxe", lease_time="1h"):
    """Full DHCP handing out FIRST..LAST on an isolated network."""
    server = _address(server_address)
    low, high = _address(first, "address"), _address(last, "address")
    if low > high:
        raise InputError(f"{first}-{last}: the first address is after the "
                         f"last")
    if not re.match(r"^[0-9]+[smhd]?$|^infinite$", lease_time):
        raise InputError(f"{lease_time!r}: not a lease time")
    lines = _head("DHCP", server, interface) + [
        f"dhcp-range={low},{high},{lease_time}",
        "dhcp-authoritative"]
    for client, name in answers(server, http_port, uefi):
        lines.append(f"dhcp-boot={_DHCP[client]},{name},,{server}")
    lines.append("dhcp-option-force=tag:efihttp,60,HTTPClient")
    return "\n".join(lines) + "\n"


def _uefi(name):
    try:
        return UEFI_LOADERS[name]
    except KeyError:
        raise InputError(f"{name!r}: the UEFI loader is one of "
                         f"{', '.join(UEFI_LOADERS)}") from None


def check(text):
    """Run `dnsmasq --test` on the configuration; ToolError with its
    words when it refuses it."""
    fd, path = tempfile.mkstemp(prefix="pxeconf-dnsmasq-", suffix=".conf")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        proc = tools.run(["dnsmasq", "--test", f"--conf-file={path}"],
                         check=False, what="pxeconf dnsmasq")
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        words = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise ToolError(f"dnsmasq --test refused the configuration: "
                        f"{words[-1] if words else 'exit ' + str(proc.returncode)}",
                        proc.returncode, proc.stdout + proc.stderr)
