import pytest

from diskimage.errors import InputError
from diskimage.netboot import macaddr


@pytest.mark.parametrize("text", ["52:54:00:AB:cd:EF", "52-54-00-ab-cd-ef",
                                  "525400abcdef", " 52:54:00:ab:cd:ef\n",
                                  "5254.00AB.cdef"])
def test_one_spelling(text):
    assert macaddr.normalise(text) == "52:54:00:ab:cd:ef"


@pytest.mark.parametrize("text", ["52:54:00:ab:cd", "52:54-00:ab:cd:ef",
                                  "5254.00ab.cde", "52.54.00.ab.cd.ef",
                                  "zz:54:00:ab:cd:ef",
                                  "52:54:00:ab:cd:ef:01", ""])
def test_refused(text):
    with pytest.raises(InputError, match="not a MAC address"):
        macaddr.normalise(text)


@pytest.mark.parametrize("text,what", [
    ("00:00:00:00:00:00", "all-zero"), ("ff:ff:ff:ff:ff:ff", "broadcast"),
    ("FF-FF-FF-FF-FF-FF", "broadcast"), ("01:00:5e:00:00:fb", "multicast"),
    ("33:33:00:00:00:01", "multicast")])
def test_not_a_machines_mac(text, what):
    with pytest.raises(InputError, match=rf"{what}.*a machine's MAC is "
                       rf"unicast"):
        macaddr.normalise(text)
    assert macaddr.from_request(f"pxelinux.cfg/01-{text.replace(':', '-')}"
                                ) is None


def test_loader_names_and_back():
    mac = "52:54:00:ab:cd:ef"
    names = [macaddr.pxelinux_name(mac), *macaddr.grub_names(mac),
             macaddr.ipxe_name(mac)]
    assert names == ["pxelinux.cfg/01-52-54-00-ab-cd-ef",
                     "grub/grub.cfg-01-52-54-00-ab-cd-ef",
                     "grub/grub.cfg-52:54:00:ab:cd:ef",
                     "ipxe/52-54-00-ab-cd-ef.ipxe"]
    for name in names:
        assert macaddr.from_request("/" + name) == mac
    assert macaddr.from_request("pxelinux.cfg/default") is None
    assert macaddr.from_request("grub/grub.cfg") is None
