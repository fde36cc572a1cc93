//! Decoding with limits and orientation, and encoding that carries no metadata.
//!
//! Decoding checks the byte size, the format and the declared dimensions before a single pixel is
//! decoded (decompression bombs), then applies the EXIF orientation so detection and redaction
//! see the image as a viewer shows it. Encoding writes pixels only: no EXIF, XMP, IPTC, GPS,
//! comments or thumbnails survive, because nothing of the source container is ever copied; the
//! ICC colour profile is the one exception, and only when `keep_icc` allows it.

use std::io::Cursor;

use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::metadata::Orientation;
use image::{
    DynamicImage, ExtendedColorType, GrayImage, ImageDecoder, ImageEncoder, ImageFormat, RgbImage,
};
use serde::{Deserialize, Serialize};
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// The formats veil reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jpeg,
    Png,
    /// Read from baseline TIFF (the first image of a multi-page file), written
    /// Deflate-compressed.
    Tiff,
    Webp,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Tiff => "tif",
            Format::Webp => "webp",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Tiff => "image/tiff",
            Format::Webp => "image/webp",
        }
    }
}

/// Input limits: anything larger is rejected before its pixels are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_bytes: u64,
    /// Width × height after which an image is refused (memory is about 3 bytes per pixel, plus
    /// up to 8 while decoding 16-bit images with alpha).
    pub max_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_pixels: 50_000_000,
        }
    }
}

/// Why an input was refused. All of these are the input's fault: retrying will not help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {size} bytes, over the limit of {limit} bytes")]
    TooManyBytes { size: u64, limit: u64 },
    #[error("the file is not a JPEG, PNG, TIFF or WebP image")]
    UnknownFormat,
    #[error("the image is {width}×{height} pixels, over the limit of {limit} pixels")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("the image cannot be decoded: {0}")]
    Corrupt(String),
    /// A decoder panicked on the file (a decoder bug that damaged input can reach): the file is
    /// refused like a corrupt one instead of taking the worker down.
    #[error("the image cannot be decoded: the {} decoder failed on this file", .0.extension())]
    DecoderFailed(Format),
}

/// Decoded pixels, oriented as displayed, 8 bits per channel.
#[derive(Debug, Clone)]
pub struct Picture {
    pub rgb: RgbImage,
    /// The alpha channel, when the source had one.
    pub alpha: Option<GrayImage>,
    /// The source was grayscale: it is written back as grayscale.
    pub gray: bool,
}

impl Picture {
    /// Every image a viewer could be shown, for detection: the colour planes as stored (what a
    /// JPEG rendition or an alpha-ignoring viewer shows), and, when any pixel is translucent,
    /// the picture composited over a white and over a black page, where an object drawn in the
    /// alpha plane alone becomes visible.
    ///
    /// A view of one colour throughout, or equal to an earlier one, is left out: it shows
    /// nothing the others do not, and each view costs a whole detection. A picture drawn in the
    /// alpha plane alone has black colour planes, which also show over a black page; a cut-out
    /// stored with black behind it looks the same over a black page as without its alpha.
    pub fn views(&self) -> Vec<std::borrow::Cow<'_, RgbImage>> {
        let mut candidates = vec![std::borrow::Cow::Borrowed(&self.rgb)];
        if let Some(alpha) = self.alpha.as_ref().filter(|a| a.iter().any(|&v| v < 255)) {
            for page in [255u16, 0] {
                let mut over = self.rgb.clone();
                for (p, &a) in over.pixels_mut().zip(alpha.iter()) {
                    let a = a as u16;
                    for c in &mut p.0 {
                        *c = ((*c as u16 * a + page * (255 - a) + 127) / 255) as u8;
                    }
                }
                candidates.push(std::borrow::Cow::Owned(over));
            }
        }
        let mut views = Vec::with_capacity(candidates.len());
        for view in candidates {
            let mut pixels = view.pixels();
            let first = pixels.next().copied();
            let uniform = pixels.all(|p| Some(*p) == first);
            if !uniform && !views.contains(&view) {
                views.push(view);
            }
        }
        views
    }
}

#[derive(Debug, Clone)]
pub struct Decoded {
    pub picture: Picture,
    pub format: Format,
    /// The EXIF orientation that was applied (1 = none).
    pub orientation: u8,
    pub icc: Option<Vec<u8>>,
}

pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Decoded, InputError> {
    if bytes.is_empty() {
        return Err(InputError::Empty);
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(InputError::TooManyBytes {
            size: bytes.len() as u64,
            limit: limits.max_bytes,
        });
    }
    let format = match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => Format::Jpeg,
        Ok(ImageFormat::Png) => Format::Png,
        Ok(ImageFormat::Tiff) => Format::Tiff,
        Ok(ImageFormat::WebP) => Format::Webp,
        // BigTIFF, which the image crate's guess leaves out but its TIFF decoder reads.
        _ if bytes.starts_with(b"II+\0") || bytes.starts_with(b"MM\0+") => Format::Tiff,
        _ => return Err(InputError::UnknownFormat),
    };
    // The decoders are third-party code run on untrusted bytes; fuzzing found a JPEG that makes
    // one panic. Whatever they do, a file is either decoded or refused.
    let decoded = std::panic::catch_unwind(|| match format {
        Format::Jpeg => decode_jpeg(bytes, limits),
        Format::Png | Format::Tiff | Format::Webp => decode_other(bytes, format, limits),
    });
    let (mut img, orientation, icc) = decoded.map_err(|_| InputError::DecoderFailed(format))??;
    img.apply_orientation(orientation);
    Ok(Decoded {
        picture: picture(img),
        format,
        orientation: orientation.to_exif(),
        icc,
    })
}

fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), InputError> {
    if width as u64 * height as u64 > limits.max_pixels {
        return Err(InputError::TooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    if width == 0 || height == 0 {
        return Err(InputError::Corrupt("the image has no pixels".into()));
    }
    Ok(())
}

type Pixels = (DynamicImage, Orientation, Option<Vec<u8>>);

/// JPEG through zune-jpeg in strict mode: a truncated or damaged stream is an error, where a
/// lenient decoder would fill the missing part with grey and carry on.
fn decode_jpeg(bytes: &[u8], limits: &Limits) -> Result<Pixels, InputError> {
    let corrupt = |e: zune_jpeg::errors::DecodeErrors| InputError::Corrupt(e.to_string());
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let mut decoder = JpegDecoder::new_with_options(Cursor::new(bytes), options);
    decoder.decode_headers().map_err(corrupt)?;
    let info = decoder
        .info()
        .ok_or_else(|| InputError::Corrupt("no JPEG header".into()))?;
    let (width, height) = (info.width as u32, info.height as u32);
    check_pixels(width, height, limits)?;
    // A broken EXIF block must not stop anonymisation: the image is then shown unrotated.
    let orientation = decoder
        .exif()
        .and_then(|e| Orientation::from_exif_chunk(e))
        .unwrap_or(Orientation::NoTransforms);
    let icc = decoder.icc_profile();
    let gray = decoder.input_colorspace() == Some(ColorSpace::Luma);
    let out = if gray {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    let options = decoder.options().jpeg_set_out_colorspace(out);
    decoder.set_options(options);
    let pixels = decoder.decode().map_err(corrupt)?;
    let img = if gray {
        GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8)
    } else {
        RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8)
    };
    let img = img.ok_or_else(|| {
        InputError::Corrupt("decoded fewer pixels than the header declares".into())
    })?;
    Ok((img, orientation, icc))
}

/// PNG, TIFF and WebP through the image crate, whose decoders fail on truncated data. A TIFF's
/// orientation is its own Orientation tag; of a multi-page TIFF only the first image is read
/// (what is published is made from it alone, so the other pages never reach a copy).
fn decode_other(bytes: &[u8], format: Format, limits: &Limits) -> Result<Pixels, InputError> {
    let corrupt = |e: image::ImageError| InputError::Corrupt(e.to_string());
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), image_format(format));
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = decoder.icc_profile().ok().flatten();
    let img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    Ok((img, orientation, icc))
}

fn picture(img: DynamicImage) -> Picture {
    let gray = !img.color().has_color();
    if img.color().has_alpha() {
        let rgba = img.into_rgba8();
        let (w, h) = rgba.dimensions();
        let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
        let mut alpha = Vec::with_capacity(w as usize * h as usize);
        for p in rgba.pixels() {
            rgb.extend_from_slice(&p.0[..3]);
            alpha.push(p.0[3]);
        }
        Picture {
            rgb: RgbImage::from_raw(w, h, rgb).expect("sized from the source"),
            alpha: Some(GrayImage::from_raw(w, h, alpha).expect("sized from the source")),
            gray,
        }
    } else {
        Picture {
            rgb: img.into_rgb8(),
            alpha: None,
            gray,
        }
    }
}

fn image_format(f: Format) -> ImageFormat {
    match f {
        Format::Jpeg => ImageFormat::Jpeg,
        Format::Png => ImageFormat::Png,
        Format::Tiff => ImageFormat::Tiff,
        Format::Webp => ImageFormat::WebP,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot encode the {format:?} output: {message}")]
pub struct EncodeError {
    pub format: Format,
    pub message: String,
}

/// Encodes pixels only. JPEG drops alpha; WebP is written lossless (the only WebP encoder here);
/// TIFF has no grayscale-with-alpha layout in its encoder, so such a picture is written as RGBA.
pub fn encode(
    pic: &Picture,
    format: Format,
    jpeg_quality: u8,
    icc: Option<&[u8]>,
) -> Result<Vec<u8>, EncodeError> {
    let err = |message: String| EncodeError { format, message };
    let (w, h) = pic.rgb.dimensions();
    let (data, color): (std::borrow::Cow<[u8]>, ExtendedColorType) =
        match (&pic.alpha, pic.gray, format) {
            (Some(a), true, Format::Png | Format::Webp) => {
                (interleave(pic, a, true).into(), ExtendedColorType::La8)
            }
            (Some(a), _, Format::Png | Format::Tiff | Format::Webp) => {
                (interleave(pic, a, false).into(), ExtendedColorType::Rgba8)
            }
            (_, true, _) => (luma(&pic.rgb).into(), ExtendedColorType::L8),
            (_, false, _) => (pic.rgb.as_raw().as_slice().into(), ExtendedColorType::Rgb8),
        };
    let mut out = Vec::with_capacity(data.len() / 4);
    match format {
        Format::Jpeg => {
            let (w16, h16) = (
                u16::try_from(w).map_err(|_| err("JPEG width is at most 65535".into()))?,
                u16::try_from(h).map_err(|_| err("JPEG height is at most 65535".into()))?,
            );
            let mut encoder = jpeg_encoder::Encoder::new(&mut out, jpeg_quality);
            if let Some(icc) = icc {
                encoder
                    .add_icc_profile(icc)
                    .map_err(|e| err(e.to_string()))?;
            }
            let ct = if color == ExtendedColorType::L8 {
                jpeg_encoder::ColorType::Luma
            } else {
                jpeg_encoder::ColorType::Rgb
            };
            encoder
                .encode(&data, w16, h16, ct)
                .map_err(|e| err(e.to_string()))?;
        }
        Format::Png => {
            write_with(PngEncoder::new(&mut out), &data, (w, h), color, icc).map_err(err)?
        }
        Format::Tiff => write_tiff(&mut out, &data, (w, h), color, icc).map_err(err)?,
        Format::Webp => write_with(
            WebPEncoder::new_lossless(&mut out),
            &data,
            (w, h),
            color,
            icc,
        )
        .map_err(err)?,
    }
    Ok(out)
}

/// TIFF through the tiff crate, Deflate-compressed over horizontal differences: the image
/// crate's TIFF encoder writes uncompressed strips only (a 12 MP copy would take 36 MB). The
/// file holds the pixels and the tags that describe them, nothing of the source's directory.
fn write_tiff(
    out: &mut Vec<u8>,
    data: &[u8],
    (w, h): (u32, u32),
    color: ExtendedColorType,
    icc: Option<&[u8]>,
) -> Result<(), String> {
    use tiff::encoder::{Compression, DeflateLevel, TiffEncoder, colortype};
    let mut encoder = TiffEncoder::new(Cursor::new(out))
        .map_err(|e| e.to_string())?
        .with_compression(Compression::Deflate(DeflateLevel::Balanced))
        .with_predictor(tiff::tags::Predictor::Horizontal);
    let written = match color {
        ExtendedColorType::L8 => tiff_image::<colortype::Gray8>(&mut encoder, data, (w, h), icc),
        ExtendedColorType::Rgb8 => tiff_image::<colortype::RGB8>(&mut encoder, data, (w, h), icc),
        ExtendedColorType::Rgba8 => tiff_image::<colortype::RGBA8>(&mut encoder, data, (w, h), icc),
        other => return Err(format!("no TIFF layout for {other:?}")),
    };
    written.map_err(|e| e.to_string())
}

fn tiff_image<C: tiff::encoder::colortype::ColorType<Inner = u8>>(
    encoder: &mut tiff::encoder::TiffEncoder<Cursor<&mut Vec<u8>>>,
    data: &[u8],
    (w, h): (u32, u32),
    icc: Option<&[u8]>,
) -> tiff::TiffResult<()> {
    let mut image = encoder.new_image::<C>(w, h)?;
    if C::BITS_PER_SAMPLE.len() == 4 {
        // The fourth sample is straight (unassociated) alpha; without this tag readers are left
        // to guess what it is.
        let straight = [tiff::tags::ExtraSamples::UnassociatedAlpha.to_u16()];
        image
            .encoder()
            .write_tag(tiff::tags::Tag::ExtraSamples, &straight[..])?;
    }
    if let Some(icc) = icc {
        image
            .encoder()
            .write_tag(tiff::tags::Tag::IccProfile, icc)?;
    }
    image.write_data(data)
}

/// Writes pixels (and the ICC profile, if given) through one of the image crate's encoders.
fn write_with(
    mut encoder: impl ImageEncoder,
    data: &[u8],
    (w, h): (u32, u32),
    color: ExtendedColorType,
    icc: Option<&[u8]>,
) -> Result<(), String> {
    if let Some(icc) = icc {
        encoder
            .set_icc_profile(icc.to_vec())
            .map_err(|e| e.to_string())?;
    }
    encoder
        .write_image(data, w, h, color)
        .map_err(|e| e.to_string())
}

fn interleave(pic: &Picture, alpha: &GrayImage, gray: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(alpha.len() * if gray { 2 } else { 4 });
    for (p, a) in pic.rgb.pixels().zip(alpha.iter()) {
        if gray {
            v.extend_from_slice(&[p.0[0], *a]);
        } else {
            v.extend_from_slice(&[p.0[0], p.0[1], p.0[2], *a]);
        }
    }
    v
}

/// BT.601 luma in 8-bit fixed point; exact for the R = G = B pixels of grayscale sources.
fn luma(rgb: &RgbImage) -> Vec<u8> {
    rgb.pixels()
        .map(|p| ((77 * p.0[0] as u32 + 150 * p.0[1] as u32 + 29 * p.0[2] as u32) >> 8) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(rgb: impl Fn(u32, u32) -> [u8; 3], alpha: Option<fn(u32, u32) -> u8>) -> Picture {
        Picture {
            rgb: RgbImage::from_fn(8, 8, |x, y| image::Rgb(rgb(x, y))),
            alpha: alpha.map(|a| GrayImage::from_fn(8, 8, |x, y| image::Luma([a(x, y)]))),
            gray: false,
        }
    }

    #[test]
    fn views_that_are_blank_or_repeat_another_are_left_out() {
        let shade = |x: u32, y: u32| (x * 30 + y) as u8;
        // drawn in the alpha plane alone: only the view over a white page shows it
        let alpha_only = picture(|_, _| [0, 0, 0], Some(shade));
        let views = alpha_only.views();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].get_pixel(0, 0).0, [255, 255, 255], "over white");
        // a cut-out with black behind it: as stored, and over white
        let cut_out = picture(
            |x, _| if x < 4 { [0, 0, 0] } else { [200, 90, 40] },
            Some(|x, _| if x < 4 { 0 } else { 255 }),
        );
        assert_eq!(cut_out.views().len(), 2);
        // an opaque photo: as stored; translucent colour over both pages: all three
        assert_eq!(picture(|x, y| [shade(x, y); 3], None).views().len(), 1);
        let translucent = picture(|x, y| [shade(x, y), 9, 9], Some(|_, _| 128));
        assert_eq!(translucent.views().len(), 3);
        // one colour throughout: nothing to look at
        assert!(picture(|_, _| [7, 7, 7], None).views().is_empty());
    }
}
