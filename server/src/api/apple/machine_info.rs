//! MachineInfo, what Setup Assistant says of the device when it fetches
//! the enrollment profile of Automated Device Enrollment (Apple, "Device
//! Assignment": a plist with `UDID`, `SERIAL`, `PRODUCT`, `VERSION`, …).
//! Read only for the serial number it names, which is no proof.

use super::wire::{WireError, read_plist, top_dictionary};

/// The keys Latchkey reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineInfo {
    pub serial: String,
    pub udid: Option<String>,
    pub product: Option<String>,
}

/// Reads the plist (XML or binary) inside MachineInfo's signature.
pub fn machine_info(plist: &[u8]) -> Result<MachineInfo, WireError> {
    let value = read_plist(plist)?;
    let fields = top_dictionary(&value)?;
    Ok(MachineInfo {
        serial: fields.required_string("SERIAL")?,
        udid: fields.non_empty_string("UDID")?,
        product: fields.non_empty_string("PRODUCT")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_serial_and_refuses_a_machine_info_without_one() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>PRODUCT</key><string>iPhone15,2</string>
<key>SERIAL</key><string>F2LXK0ABCD</string>
<key>UDID</key><string>00008110-0011223344556677</string>
<key>VERSION</key><string>22B83</string>
</dict></plist>"#;
        let info = machine_info(xml).unwrap();
        assert_eq!(info.serial, "F2LXK0ABCD");
        assert_eq!(info.product.as_deref(), Some("iPhone15,2"));
        let without = br#"<?xml version="1.0"?><plist version="1.0"><dict><key>UDID</key><string>x</string></dict></plist>"#;
        assert!(machine_info(without).is_err());
    }
}
