//! Image bytes through the decoders' header paths (format sniffing, EXIF orientation, ICC,
//! dimensions against the limits) and the pixels of small images. Any bytes must give a picture or
//! a rejection, never a panic or an allocation beyond the limits.
fn main() {
    let limits = veil::codec::Limits {
        max_bytes: 1 << 20,
        max_pixels: 1 << 20,
    };
    afl::fuzz!(|data: &[u8]| {
        let _ = veil::codec::decode(data, &limits);
    });
}
