//! Orientation, metadata stripping, bad inputs and the pixel formats veil accepts.

mod common;

use common::*;
use image::{DynamicImage, GenericImageView, ImageFormat};
use veil::codec::{Format, InputError};
use veil::detect::Class;
use veil::geometry::BoxF;
use veil::pipeline::PipelineError;
use veil::rendition::Rendition;

const ASTRONAUT_FACE: [f32; 4] = [178.0, 63.0, 268.0, 176.0];

/// A TIFF (EXIF) block with Orientation = `orientation` and a GPS latitude.
fn exif_with_orientation_and_gps(orientation: u32) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"II\x2a\x00\x08\x00\x00\x00");
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    };
    // IFD0 at 8: Orientation (SHORT), GPSInfo (LONG) -> 38
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x0112, 3, 1, orientation);
    entry(&mut t, 0x8825, 4, 1, 38);
    t.extend_from_slice(&0u32.to_le_bytes());
    // GPS IFD at 38: LatitudeRef "N", Latitude 3 RATIONALs at 68
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, u32::from_le_bytes(*b"N\0\0\0"));
    entry(&mut t, 0x0002, 5, 3, 68);
    t.extend_from_slice(&0u32.to_le_bytes());
    for v in [48u32, 51, 30] {
        t.extend_from_slice(&v.to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());
    }
    t
}

/// The APP1 segment of a JPEG carrying [`exif_with_orientation_and_gps`].
fn exif_segment(orientation: u32) -> Vec<u8> {
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(exif_with_orientation_and_gps(orientation));
    segment(0xE1, &exif)
}

/// Every EXIF orientation turns the stored pixels into the picture a viewer shows: cameras
/// held sideways or upside down write 3, 6 and 8, and mirrored ones (selfie modes, scanners) 2,
/// 4, 5 and 7. Each picture is stored as the inverse of the turn its orientation names.
#[test]
fn every_exif_orientation_gives_the_picture_as_displayed() {
    use image::imageops::{flip_horizontal, flip_vertical, rotate90, rotate180, rotate270};
    // As displayed: 48 × 32, a white square in the top left corner over dark grey.
    let shown = image::RgbImage::from_fn(48, 32, |x, y| {
        image::Rgb(if x < 16 && y < 16 { [255; 3] } else { [40; 3] })
    });
    let stored = [
        (1, shown.clone()),
        (2, flip_horizontal(&shown)),
        (3, rotate180(&shown)),
        (4, flip_vertical(&shown)),
        (5, flip_horizontal(&rotate90(&shown))),
        (6, rotate270(&shown)),
        (7, flip_vertical(&rotate90(&shown))),
        (8, rotate90(&shown)),
    ];
    for (orientation, pixels) in stored {
        let jpeg = jpeg(&pixels, 95);
        let mut input = jpeg[..2].to_vec();
        input.extend(exif_segment(orientation));
        input.extend_from_slice(&jpeg[2..]);
        let decoded = veil::codec::decode(&input, &Default::default()).unwrap();
        assert_eq!(decoded.orientation, orientation as u8);
        let rgb = &decoded.picture.rgb;
        assert_eq!(rgb.dimensions(), (48, 32), "orientation {orientation}");
        // The square's corner and the three other corners, away from JPEG's ringing.
        let level = |x, y| rgb.get_pixel(x, y).0[0];
        assert!(level(4, 4) > 200, "orientation {orientation}: top left");
        for (x, y) in [(43, 4), (4, 27), (43, 27)] {
            assert!(level(x, y) < 90, "orientation {orientation}: ({x}, {y})");
        }
    }
}

/// A CMYK JPEG (as print and scanning workflows write them, Adobe's convention) is read in the
/// colours a viewer shows, so the models see the photo and not its negative.
#[test]
fn a_cmyk_jpeg_is_read_in_the_colours_a_viewer_shows() {
    let rgb = image::load_from_memory(&photo("astronaut.png"))
        .unwrap()
        .to_rgb8();
    let cmyk: Vec<u8> = rgb
        .pixels()
        .flat_map(|p| [255 - p.0[0], 255 - p.0[1], 255 - p.0[2], 0])
        .collect();
    let mut input = Vec::new();
    jpeg_encoder::Encoder::new(&mut input, 95)
        .encode(
            &cmyk,
            rgb.width() as u16,
            rgb.height() as u16,
            jpeg_encoder::ColorType::Cmyk,
        )
        .unwrap();
    let decoded = veil::codec::decode(&input, &Default::default()).unwrap();
    let read = &decoded.picture.rgb;
    assert_eq!(read.dimensions(), rgb.dimensions());
    let off: u64 = read
        .as_raw()
        .iter()
        .zip(rgb.as_raw())
        .map(|(a, b)| a.abs_diff(*b) as u64)
        .sum();
    let mean = off as f64 / rgb.as_raw().len() as f64;
    assert!(mean < 4.0, "{mean:.1} levels off on average");
}

#[test]
fn exif_orientation_is_applied_before_detection_and_all_metadata_is_stripped() {
    // The photo as a viewer shows it (512×400), stored rotated as a camera held sideways would.
    let display = image::load_from_memory(&photo("astronaut.png"))
        .unwrap()
        .crop_imm(0, 0, 512, 400)
        .to_rgb8();
    let jpeg = jpeg(&image::imageops::rotate270(&display), 95);
    let mut input = jpeg[..2].to_vec();
    input.extend(exif_segment(6));
    input.extend(segment(
        0xE1,
        b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>secret-xmp</x:xmpmeta>",
    ));
    input.extend(segment(0xED, b"Photoshop 3.0\0secret-iptc"));
    input.extend(segment(0xFE, b"secret-comment"));
    input.extend_from_slice(&jpeg[2..]);
    assert_eq!(
        image::load_from_memory(&input).unwrap().dimensions(),
        (400, 512),
        "stored sideways"
    );

    let result = pipeline_with(&config())
        .anonymise(&input, &[Rendition::default()])
        .unwrap();
    let report = &result.report;
    assert_eq!(
        (report.orientation, report.width, report.height),
        (6, 512, 400)
    );
    let face = BoxF::from(ASTRONAUT_FACE);
    let iou = report
        .detections
        .iter()
        .filter(|d| d.class == Class::Face)
        .map(|d| d.bbox.iou(&face))
        .fold(0.0, f32::max);
    assert!(
        iou >= 0.5,
        "the face is found where the viewer sees it (IoU {iou})"
    );

    let out = &result.outputs[0].bytes;
    let after = rgb(out);
    assert_eq!(
        after.dimensions(),
        (512, 400),
        "the output is stored upright"
    );
    assert_redacted(&display, &after, &face, "rotated astronaut");
    let markers = jpeg_markers(out);
    assert!(
        markers
            .iter()
            .all(|m| !(0xE1..=0xEF).contains(m) && *m != 0xFE),
        "metadata segments in output: {markers:x?}"
    );
    for needle in [&b"Exif"[..], b"xmpmeta", b"secret", b"Photoshop"] {
        assert!(
            !contains(out, needle),
            "{:?} survived",
            String::from_utf8_lossy(needle)
        );
    }
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(out))
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    use image::ImageDecoder;
    assert_eq!(decoder.exif_metadata().unwrap(), None);
}

/// A TIFF of `pages`, LZW-compressed, its first page carrying an Orientation tag and text that
/// names a person; later pages are plain.
fn tiff(pages: &[&image::RgbImage], orientation: u16) -> Vec<u8> {
    use tiff::encoder::{Compression, TiffEncoder, colortype::RGB8};
    use tiff::tags::Tag;
    let mut out = Vec::new();
    let mut encoder = TiffEncoder::new(std::io::Cursor::new(&mut out))
        .unwrap()
        .with_compression(Compression::Lzw);
    for (i, page) in pages.iter().enumerate() {
        let mut image = encoder
            .new_image::<RGB8>(page.width(), page.height())
            .unwrap();
        if i == 0 {
            let dir = image.encoder();
            dir.write_tag(Tag::Orientation, orientation).unwrap();
            dir.write_tag(Tag::Artist, "secret-artist").unwrap();
            dir.write_tag(Tag::ImageDescription, "secret-description")
                .unwrap();
        }
        image.write_data(page.as_raw()).unwrap();
    }
    out
}

/// The tags of a TIFF's first directory, and whether another directory follows it.
fn tiff_tags(bytes: &[u8]) -> (Vec<u16>, bool) {
    let little = &bytes[..2] == b"II";
    let u16_at = |i: usize| {
        let b = [bytes[i], bytes[i + 1]];
        if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    let u32_at = |i: usize| {
        let b = bytes[i..i + 4].try_into().unwrap();
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let ifd = u32_at(4) as usize;
    let count = u16_at(ifd) as usize;
    let tags = (0..count).map(|i| u16_at(ifd + 2 + 12 * i)).collect();
    (tags, u32_at(ifd + 2 + 12 * count) != 0)
}

/// A TIFF (scanners, industrial and inspection cameras, archives) is read as a viewer shows it,
/// by its own Orientation tag, and written back as a TIFF of one page that holds the redacted
/// pixels and the tags that describe them: no text, no other page.
#[test]
fn a_tiff_is_read_as_displayed_and_written_back_with_its_pixels_alone() {
    let display = image::load_from_memory(&photo("astronaut.png"))
        .unwrap()
        .crop_imm(0, 0, 512, 400)
        .to_rgb8();
    let input = tiff(&[&image::imageops::rotate270(&display), &display], 6);
    let result = pipeline_with(&config())
        .anonymise(&input, &[Rendition::default()])
        .unwrap();
    let report = &result.report;
    assert_eq!(report.format, Format::Tiff);
    assert_eq!(
        (report.orientation, report.width, report.height),
        (6, 512, 400)
    );
    let face = BoxF::from(ASTRONAUT_FACE);
    assert!(
        report
            .detections
            .iter()
            .any(|d| d.class == Class::Face && d.bbox.iou(&face) >= 0.5),
        "the face is found where the viewer sees it"
    );

    let out = &result.outputs[0].bytes;
    assert_eq!(image::guess_format(out).unwrap(), ImageFormat::Tiff);
    assert_eq!(result.outputs[0].info.format.content_type(), "image/tiff");
    let after = rgb(out);
    assert_eq!(after.dimensions(), (512, 400), "stored upright");
    assert_redacted(&display, &after, &face, "TIFF");
    assert!(!contains(out, b"secret"));
    let (tags, more_pages) = tiff_tags(out);
    assert!(!more_pages, "the second page is not published");
    // Size, layout, compression, colour model, strips, resolution 1:1, predictor, sample format.
    let describing = [
        256, 257, 258, 259, 262, 273, 277, 278, 279, 282, 283, 296, 317, 339,
    ];
    assert!(
        tags.iter().all(|t| describing.contains(t)),
        "tags in output: {tags:?}"
    );
    let mut decoder = tiff::decoder::Decoder::new(std::io::Cursor::new(out)).unwrap();
    assert_eq!(
        decoder.get_tag_u32(tiff::tags::Tag::Compression).unwrap(),
        8,
        "Deflate"
    );
    assert!(out.len() < 512 * 400 * 3, "{} bytes", out.len());
}

/// BigTIFF (64-bit offsets, written by scanners and microscopes for very large images) is read
/// as TIFF.
#[test]
fn a_bigtiff_is_read_as_a_tiff() {
    let pixels =
        image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut input = Vec::new();
    tiff::encoder::TiffEncoder::new_big(std::io::Cursor::new(&mut input))
        .unwrap()
        .write_image::<tiff::encoder::colortype::RGB8>(64, 48, pixels.as_raw())
        .unwrap();
    assert_eq!(&input[..4], b"II+\0");
    let decoded = veil::codec::decode(&input, &Default::default()).unwrap();
    assert_eq!(decoded.format, Format::Tiff);
    assert_eq!(decoded.picture.rgb, pixels);
}

/// A translucent TIFF keeps its alpha plane, marked as straight alpha so that readers need not
/// guess what the fourth sample is.
#[test]
fn a_translucent_tiff_keeps_its_alpha_marked_as_alpha() {
    let mut rgba = image::load_from_memory(&photo("astronaut.png"))
        .unwrap()
        .to_rgba8();
    for p in rgba.pixels_mut() {
        p.0[3] = 200;
    }
    let mut input = Vec::new();
    DynamicImage::ImageRgba8(rgba)
        .write_to(&mut std::io::Cursor::new(&mut input), ImageFormat::Tiff)
        .unwrap();
    let result = pipeline_with(&config())
        .anonymise(&input, &[Rendition::default()])
        .unwrap();
    let out = &result.outputs[0].bytes;
    let decoded = image::load_from_memory(out).unwrap();
    assert_eq!(decoded.color(), image::ColorType::Rgba8);
    assert_eq!(decoded.get_pixel(10, 10).0[3], 200);
    let mut decoder = tiff::decoder::Decoder::new(std::io::Cursor::new(out)).unwrap();
    assert_eq!(
        decoder
            .get_tag_u16_vec(tiff::tags::Tag::ExtraSamples)
            .unwrap(),
        [2],
        "ExtraSamples: unassociated alpha"
    );
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    let mut h = crc32fast::Hasher::new();
    h.update(kind);
    h.update(data);
    c.extend_from_slice(&h.finalize().to_be_bytes());
    c
}

/// The chunk types of a PNG file, in order.
fn png_chunks(bytes: &[u8]) -> Vec<String> {
    let mut kinds = Vec::new();
    let mut i = 8;
    while i + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        kinds.push(String::from_utf8_lossy(&bytes[i + 4..i + 8]).into_owned());
        i += 12 + len;
    }
    kinds
}

#[test]
fn png_text_and_exif_chunks_are_not_carried_over() {
    let original = photo("astronaut.png");
    // insert metadata chunks right after IHDR (8-byte signature + 25-byte IHDR chunk)
    let mut input = original[..33].to_vec();
    input.extend(png_chunk(b"tEXt", b"Comment\0secret-comment"));
    input.extend(png_chunk(b"eXIf", &exif_with_orientation_and_gps(6)));
    input.extend(png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0secret-xmp"));
    input.extend_from_slice(&original[33..]);
    let result = pipeline_with(&config())
        .anonymise(&input, &[Rendition::default()])
        .unwrap();
    assert_eq!(result.report.orientation, 6, "eXIf orientation is honoured");
    let out = &result.outputs[0].bytes;
    let chunks = png_chunks(out);
    assert!(
        chunks
            .iter()
            .all(|c| ["IHDR", "IDAT", "IEND"].contains(&c.as_str())),
        "chunks in output: {chunks:?}"
    );
    assert!(!contains(out, b"secret"));
}

#[test]
fn an_input_at_the_byte_limit_can_be_published_in_a_larger_format() {
    // The published bytes are decoded again for the re-check; the input's byte limit must not
    // refuse an output that encodes larger than its source.
    let t1 = photo("t1.jpg");
    let mut c = config();
    c.limits.max_bytes = t1.len() as u64;
    let png = Rendition {
        format: Some(Format::Png),
        ..Rendition::default()
    };
    let result = pipeline_with(&c).anonymise(&t1, &[png]).unwrap();
    assert!(result.outputs[0].bytes.len() > t1.len());
    assert_eq!(result.outputs[0].info.format, Format::Png);
}

fn rejected(bytes: &[u8], config: &veil::config::Config) -> InputError {
    match pipeline_with(config).anonymise(bytes, &[Rendition::default()]) {
        Err(PipelineError::Input(e)) => {
            assert!(!e.to_string().is_empty());
            e
        }
        Err(other) => panic!("expected an input error, got {other}"),
        Ok(_) => panic!("a bad input produced an output"),
    }
}

/// A valid 1×1 PNG whose header claims `w × h` pixels (a decompression bomb's shape).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut one = Vec::new();
    DynamicImage::new_rgb8(1, 1)
        .write_to(&mut std::io::Cursor::new(&mut one), ImageFormat::Png)
        .unwrap();
    let mut ihdr = one[16..29].to_vec();
    ihdr[..4].copy_from_slice(&w.to_be_bytes());
    ihdr[4..8].copy_from_slice(&h.to_be_bytes());
    let mut bomb = one[..8].to_vec();
    bomb.extend(png_chunk(b"IHDR", &ihdr));
    bomb.extend_from_slice(&one[33..]);
    bomb
}

/// A grayscale TIFF whose directory claims `w × h` pixels over a few bytes of data.
fn tiff_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut t = b"II\x2a\x00\x08\x00\x00\x00".to_vec();
    let entries: [(u16, u16, u32); 8] = [
        (256, 4, w),   // ImageWidth
        (257, 4, h),   // ImageLength
        (258, 3, 8),   // BitsPerSample
        (259, 3, 1),   // Compression: none
        (262, 3, 1),   // PhotometricInterpretation: black is zero
        (273, 4, 110), // StripOffsets: just past this directory
        (278, 4, h),   // RowsPerStrip
        (279, 4, 16),  // StripByteCounts
    ];
    t.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    }
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&[0u8; 16]);
    t
}

#[test]
fn corrupt_truncated_empty_foreign_and_oversized_inputs_are_rejected_with_a_reason() {
    let c = config();
    let t1 = photo("t1.jpg");
    let png = photo("astronaut.png");
    assert_eq!(rejected(b"", &c), InputError::Empty);
    assert_eq!(
        rejected(b"%PDF-1.7 not an image at all", &c),
        InputError::UnknownFormat
    );
    let small_tiff = tiff(&[&image::RgbImage::new(64, 48)], 1);
    for (whole, what) in [(&t1, "JPEG"), (&png, "PNG"), (&small_tiff, "TIFF")] {
        assert!(
            matches!(
                rejected(&whole[..whole.len() / 2], &c),
                InputError::Corrupt(_)
            ),
            "truncated {what}"
        );
    }
    let mut damaged = t1.clone();
    damaged[20..600].fill(0x5A);
    assert!(
        matches!(rejected(&damaged, &c), InputError::Corrupt(_)),
        "damaged JPEG header"
    );
    for (bomb, what) in [
        (png_claiming(100_000, 100_000), "PNG"),
        (tiff_claiming(100_000, 100_000), "TIFF"),
    ] {
        assert!(
            matches!(
                rejected(&bomb, &c),
                InputError::TooManyPixels {
                    width: 100_000,
                    height: 100_000,
                    ..
                }
            ),
            "{what} claiming 100 000 × 100 000 pixels"
        );
    }
    let mut small = config();
    small.limits.max_bytes = 1000;
    assert!(matches!(
        rejected(&t1, &small),
        InputError::TooManyBytes { limit: 1000, .. }
    ));
    small.limits.max_bytes = u64::MAX;
    small.limits.max_pixels = 100_000;
    assert!(matches!(
        rejected(&t1, &small),
        InputError::TooManyPixels {
            width: 1280,
            height: 886,
            ..
        }
    ));
}

#[test]
fn sixteen_bit_alpha_grayscale_and_webp_inputs_keep_their_shape() {
    let mut pipeline = pipeline_with(&config());
    let face = BoxF::from(ASTRONAUT_FACE);
    let astronaut = image::load_from_memory(&photo("astronaut.png")).unwrap();

    // 16-bit RGBA PNG: written as 8-bit RGBA with the alpha channel kept.
    let mut rgba16 = astronaut.to_rgba16();
    for (x, _, p) in rgba16.enumerate_pixels_mut() {
        p.0[3] = (x * 128) as u16;
    }
    let mut input = Vec::new();
    DynamicImage::ImageRgba16(rgba16.clone())
        .write_to(&mut std::io::Cursor::new(&mut input), ImageFormat::Png)
        .unwrap();
    let result = pipeline.anonymise(&input, &[Rendition::default()]).unwrap();
    let out = image::load_from_memory(&result.outputs[0].bytes).unwrap();
    assert_eq!(out.color(), image::ColorType::Rgba8);
    let (kept, source) = (
        out.get_pixel(300, 10).0[3] as i32,
        rgba16.get_pixel(300, 10).0[3] as i32 / 257,
    );
    assert!((kept - source).abs() <= 1, "alpha {kept} vs {source}");
    assert_redacted(&astronaut.to_rgb8(), &out.to_rgb8(), &face, "16-bit RGBA");

    // Grayscale stays grayscale.
    let result = pipeline
        .anonymise(&photo("camera.png"), &[Rendition::default()])
        .unwrap();
    assert!(result.report.count(Class::Face) >= 1);
    assert_eq!(
        image::load_from_memory(&result.outputs[0].bytes)
            .unwrap()
            .color(),
        image::ColorType::L8
    );

    // WebP in, WebP out; and a JPEG rendition of the same image on request.
    let mut webp = Vec::new();
    astronaut
        .to_rgb8()
        .write_to(&mut std::io::Cursor::new(&mut webp), ImageFormat::WebP)
        .unwrap();
    let jpeg = Rendition {
        format: Some(Format::Jpeg),
        max_width: Some(256),
        ..Default::default()
    };
    let result = pipeline
        .anonymise(&webp, &[Rendition::default(), jpeg])
        .unwrap();
    assert_eq!(
        image::guess_format(&result.outputs[0].bytes).unwrap(),
        ImageFormat::WebP
    );
    assert_redacted(
        &astronaut.to_rgb8(),
        &rgb(&result.outputs[0].bytes),
        &face,
        "WebP",
    );
    assert_eq!(
        image::guess_format(&result.outputs[1].bytes).unwrap(),
        ImageFormat::Jpeg
    );
    assert_eq!(
        (result.outputs[1].info.width, result.outputs[1].info.height),
        (256, 256)
    );
}

/// A photo with one translucent pixel is looked at in three views (as stored, over a white and
/// over a black page) that show the same objects: each is found, redacted and reported once, as
/// in the opaque photo, not once per view.
#[test]
fn a_translucent_photo_reports_each_object_once_not_once_per_view() {
    let mut pipeline = pipeline_with(&config());
    let astronaut = image::load_from_memory(&photo("astronaut.png")).unwrap();
    let mut rgba = astronaut.to_rgba8();
    rgba.get_pixel_mut(0, 0).0[3] = 128;
    let mut translucent = Vec::new();
    DynamicImage::ImageRgba8(rgba)
        .write_to(
            &mut std::io::Cursor::new(&mut translucent),
            ImageFormat::Png,
        )
        .unwrap();
    let found = |bytes: &[u8], pipeline: &mut veil::pipeline::Pipeline| {
        let report = pipeline.anonymise(bytes, &[]).unwrap().report;
        report.detections
    };
    let opaque = found(&photo("astronaut.png"), &mut pipeline);
    let seen = found(&translucent, &mut pipeline);
    assert!(
        opaque
            .iter()
            .any(|d| d.bbox.iou(&BoxF::from(ASTRONAUT_FACE)) > 0.5)
    );
    assert_eq!(seen.len(), opaque.len(), "{seen:?}\nagainst\n{opaque:?}");
    for d in &seen {
        assert!(
            opaque
                .iter()
                .any(|o| o.class == d.class && o.bbox.iou(&d.bbox) > 0.8),
            "{d:?} is not among the opaque photo's detections {opaque:?}"
        );
    }
}

#[test]
fn a_jpeg_that_makes_the_decoder_panic_is_refused_not_a_crash() {
    // Found by scripts/fuzz.sh: zune-jpeg 0.5.15 unwraps a None in its AVX2 IDCT on this file.
    let bytes = std::fs::read(root().join("fuzz/seeds/decode/zune-idct-panic.jpg")).unwrap();
    let limits = veil::codec::Limits {
        max_bytes: 1 << 20,
        max_pixels: 1 << 20,
    };
    let e = veil::codec::decode(&bytes, &limits).expect_err("a damaged JPEG");
    assert!(
        matches!(e, veil::codec::InputError::DecoderFailed(_)),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the image cannot be decoded: the jpg decoder failed on this file"
    );
}
