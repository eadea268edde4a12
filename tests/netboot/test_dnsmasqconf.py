"""dnsmasq's configuration for proxyDHCP and for full DHCP: every file
generated here passes `dnsmasq --test`, and says what each client gets."""

import pytest

from diskimage.errors import InputError, ToolError
from diskimage.netboot import dnsmasqconf

pytestmark = pytest.mark.needs("dnsmasq")


def lines(text):
    return [l for l in text.splitlines() if l and not l.startswith("#")]


def test_proxy_mode_answers_every_firmware_with_pxe_service_lines():
    text = dnsmasqconf.proxy_config(None, "10.0.0.2", "10.0.0.0/24",
                                    interface="br0", http_port=8080)
    dnsmasqconf.check(text)
    got = lines(text)
    assert "port=0" in got
    assert "dhcp-range=10.0.0.0,proxy,255.255.255.0" in got
    assert "interface=br0" in got
    assert not [l for l in got if l.startswith(("dhcp-boot", "enable-tftp",
                                                "tftp-root"))]
    services = [l for l in got if l.startswith("pxe-service=")]
    assert 'pxe-service=tag:!ipxe,x86PC,"Network boot (BIOS)",pxelinux.0,' \
        '10.0.0.2' in services
    for csa in ("X86-64_EFI", "BC_EFI"):     # client arch 9 and 7: both
        assert f'pxe-service=tag:!ipxe,{csa},"Network boot (UEFI)",' \
            f'snponly.efi,10.0.0.2' in services
        assert f'pxe-service=tag:ipxe,{csa},"iPXE",' \
            f'http://10.0.0.2:8080/boot.ipxe,10.0.0.2' in services
    assert 'pxe-service=tag:ipxe,x86PC,"iPXE",http://10.0.0.2:8080/' \
        'boot.ipxe,10.0.0.2' in services
    assert 'pxe-service=tag:!ipxe,16,"Network boot (UEFI HTTP)",' \
        'http://10.0.0.2:8080/snponly.efi,10.0.0.2' in services
    assert "dhcp-userclass=set:ipxe,iPXE" in got
    assert "dhcp-vendorclass=set:efihttp,HTTPClient" in got
    assert "dhcp-pxe-vendor=PXEClient,HTTPClient" in got
    # every service that is not for iPXE excludes it: never chained again
    assert all("tag:ipxe," in s or "tag:!ipxe," in s for s in services)


def test_proxy_mode_for_secure_boot_hands_out_shim():
    text = dnsmasqconf.proxy_config(None, "192.168.7.1", "192.168.7.0/24",
                                    uefi="shim")
    dnsmasqconf.check(text)
    assert 'pxe-service=tag:!ipxe,BC_EFI,"Network boot (UEFI)",' \
        'shimx64.efi,192.168.7.1' in text
    assert "http://192.168.7.1/boot.ipxe" in text     # port 80 unsaid


def test_full_dhcp_on_an_isolated_network():
    text = dnsmasqconf.dhcp_config(None, "10.9.0.1", "10.9.0.100",
                                   "10.9.0.200", interface="pxe0",
                                   http_port=8080)
    dnsmasqconf.check(text)
    got = lines(text)
    assert "dhcp-range=10.9.0.100,10.9.0.200,1h" in got
    assert "port=0" in got
    boots = [l for l in got if l.startswith("dhcp-boot=")]
    assert boots == [
        "dhcp-boot=tag:!ipxe,tag:!efi64,tag:!efihttp,pxelinux.0,,10.9.0.1",
        "dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi,,10.9.0.1",
        "dhcp-boot=tag:!ipxe,tag:efihttp,http://10.9.0.1:8080/snponly.efi,,"
        "10.9.0.1",
        "dhcp-boot=tag:ipxe,http://10.9.0.1:8080/boot.ipxe,,10.9.0.1"]
    assert "dhcp-match=set:efi64,option:client-arch,7" in got
    assert "dhcp-match=set:efi64,option:client-arch,9" in got
    assert "dhcp-match=set:efihttp,option:client-arch,16" in got
    assert "dhcp-option-force=tag:efihttp,60,HTTPClient" in got


@pytest.mark.parametrize("uefi, efi", [("ipxe", "snponly.efi"),
                                       ("shim", "shimx64.efi")])
def test_both_modes_give_each_client_the_same_file(uefi, efi):
    # One table of who gets what (dnsmasqconf.answers), spelled as
    # pxe-service lines in proxy mode and as dhcp-boot lines in full DHCP.
    url = "http://10.0.0.2:8080/"
    want = {"bios": "pxelinux.0", "uefi": efi,
            "uefi-http": url + "snponly.efi", "ipxe": url + "boot.ipxe"}
    assert dict(dnsmasqconf.answers("10.0.0.2", 8080, uefi)) == want
    proxy = lines(dnsmasqconf.proxy_config(None, "10.0.0.2", "10.0.0.0/24",
                                           http_port=8080, uefi=uefi))
    full = lines(dnsmasqconf.dhcp_config(None, "10.0.0.2", "10.0.0.100",
                                         "10.0.0.200", http_port=8080,
                                         uefi=uefi))
    # which client a line is for, read from its own tags and CSA
    by_csa = {("!ipxe", "x86PC"): "bios", ("!ipxe", "X86-64_EFI"): "uefi",
              ("!ipxe", "BC_EFI"): "uefi", ("!ipxe", "16"): "uefi-http",
              ("ipxe", "x86PC"): "ipxe", ("ipxe", "X86-64_EFI"): "ipxe",
              ("ipxe", "BC_EFI"): "ipxe"}
    got = {}
    for line in proxy:
        if line.startswith("pxe-service=tag:"):
            tag, csa, _text, name, server = \
                line[len("pxe-service=tag:"):].split(",")
            assert server == "10.0.0.2"
            got.setdefault(by_csa[(tag, csa)], set()).add(name)
    assert got == {client: {name} for client, name in want.items()}
    by_tags = {"!ipxe,!efi64,!efihttp": "bios", "!ipxe,efi64": "uefi",
               "!ipxe,efihttp": "uefi-http", "ipxe": "ipxe"}
    got = {}
    for line in full:
        if line.startswith("dhcp-boot="):
            *tags, name, _, server = line[len("dhcp-boot="):].split(",")
            assert server == "10.0.0.2"
            got[by_tags[",".join(t[len("tag:"):] for t in tags)]] = name
    assert got == want


@pytest.mark.parametrize("call, words", [
    (lambda: dnsmasqconf.proxy_config(None, "10.0.0.2", "10.0.0/99"),
     "not an IPv4 network"),
    (lambda: dnsmasqconf.proxy_config(None, "10.1.0.2", "10.0.0.0/24"),
     "not in the network"),
    (lambda: dnsmasqconf.proxy_config(None, "pxe.lan", "10.0.0.0/24"),
     "not an IPv4 server address"),
    (lambda: dnsmasqconf.proxy_config(None, "10.0.0.2", "10.0.0.0/24",
                                      interface="br0\nenable-tftp"),
     "not an interface name"),
    (lambda: dnsmasqconf.proxy_config(None, "10.0.0.2", "10.0.0.0/24",
                                      http_port=70000), "not a port"),
    (lambda: dnsmasqconf.dhcp_config(None, "10.0.0.2", "10.0.0.200",
                                     "10.0.0.100"), "first address is after"),
    (lambda: dnsmasqconf.dhcp_config(None, "10.0.0.2", "10.0.0.1",
                                     "10.0.0.x"), "not an IPv4 address"),
    (lambda: dnsmasqconf.proxy_config(None, "10.0.0.2", "10.0.0.0/24",
                                      uefi="grub"), "UEFI loader"),
])
def test_bad_values_are_refused_with_what_and_where(call, words):
    with pytest.raises(InputError, match=words):
        call()


def test_check_gives_dnsmasqs_own_words():
    with pytest.raises(ToolError, match="bad dhcp-range"):
        dnsmasqconf.check("port=0\ndhcp-range=10.0.0.0,nonsense\n")
