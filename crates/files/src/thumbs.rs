//! Thumbnails, PocketBase's grammar: `WxH` (centre crop), `WxHt` (top), `WxHb` (bottom),
//! `WxHf` (fit inside), `0xH` and `Wx0` (one side, the other kept in proportion). Sources are
//! JPEG, PNG, GIF (first frame) and WebP; each thumbnail keeps its source's format (PocketBase
//! turns WebP into PNG, several times larger; pier's WebP thumbnails are lossy, through
//! libwebp). EXIF orientation is applied.
//!
//! Decoding is bounded before it starts: the header's dimensions are checked against a pixel
//! budget and the decoder gets `image::Limits`, so a decompression bomb is refused without
//! being run. [`Thumbs`] makes each thumbnail once, even when many ask at the same moment
//! (one flight per thumbnail key, a semaphore over the CPU work), and keeps it in the store.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use tokio::sync::{OnceCell, Semaphore};

use crate::FilesError;
use crate::store::FileStore;

/// A parsed thumbnail size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbSpec {
    pub width: u32,
    pub height: u32,
    pub mode: Mode,
}

/// How the source is fitted into the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Crop to the aspect ratio around the centre, then resize.
    Center,
    Top,
    Bottom,
    /// Resize to fit inside, keeping the aspect ratio.
    Fit,
}

impl ThumbSpec {
    /// Parses `100x100`, `100x100t`, `100x100b`, `100x100f`, `0x100` or `100x0`.
    pub fn parse(s: &str) -> Option<ThumbSpec> {
        let (body, mode) = match s.as_bytes().last()? {
            b't' => (&s[..s.len() - 1], Mode::Top),
            b'b' => (&s[..s.len() - 1], Mode::Bottom),
            b'f' => (&s[..s.len() - 1], Mode::Fit),
            _ => (s, Mode::Center),
        };
        let (w, h) = body.split_once('x')?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(w) || !digits(h) {
            return None;
        }
        let (width, height) = (w.parse().ok()?, h.parse().ok()?);
        if width == 0 && height == 0 {
            return None;
        }
        // One side zero: only the plain form.
        if (width == 0 || height == 0) && mode != Mode::Center {
            return None;
        }
        Some(ThumbSpec {
            width,
            height,
            mode,
        })
    }
}

/// Bounds on what a thumbnail may cost.
#[derive(Debug, Clone, Copy)]
pub struct ThumbLimits {
    /// Sources with more pixels than this are not decoded.
    pub max_pixels: u64,
    /// Sources larger than this many bytes are not read.
    pub max_bytes: u64,
    /// Longest a thumbnail may take to make.
    pub timeout: Duration,
}

impl Default for ThumbLimits {
    fn default() -> Self {
        ThumbLimits {
            max_pixels: 100_000_000,
            max_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(20),
        }
    }
}

/// The formats a thumbnail can be made from.
pub fn thumbable(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png", ".gif", ".webp"]
        .iter()
        .any(|e| lower.ends_with(e))
}

/// Makes the thumbnail of the encoded image `src`, in `src`'s own format.
///
/// # Errors
/// [`FilesError::Image`] for an unknown or corrupt image, [`FilesError::TooLarge`] when the
/// image has more pixels than `max_pixels`.
pub(crate) fn make(src: &[u8], spec: ThumbSpec, max_pixels: u64) -> Result<Bytes, FilesError> {
    let bad = |e: image::ImageError| FilesError::Image(e.to_string());
    let reader = ImageReader::new(Cursor::new(src))
        .with_guessed_format()
        .map_err(|e| FilesError::Image(e.to_string()))?;
    let format = reader
        .format()
        .ok_or_else(|| FilesError::Image("unknown image format".into()))?;
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(FilesError::TooLarge { limit: max_pixels });
    }
    let orientation = decoder.orientation().ok();
    let mut img = match format {
        // JPEG can decode at 1/2, 1/4 or 1/8 of its size for a fraction of the work.
        ImageFormat::Jpeg => match jpeg_scaled(src, needed(w, h, spec, rotates(orientation))) {
            Some(img) => img,
            None => DynamicImage::from_decoder(decoder).map_err(bad)?,
        },
        _ => DynamicImage::from_decoder(decoder).map_err(bad)?,
    };
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let img = normalise(img);
    // Sizes follow the picture's true proportions, not the rounding of a scaled decode.
    let true_size = if rotates(orientation) { (h, w) } else { (w, h) };
    let out = resize(&img, true_size, spec)?;
    encode(&out, format)
}

fn rotates(o: Option<image::metadata::Orientation>) -> bool {
    use image::metadata::Orientation as O;
    matches!(
        o,
        Some(O::Rotate90 | O::Rotate270 | O::Rotate90FlipH | O::Rotate270FlipH)
    )
}

/// The smallest source size (in the file's own frame) that still gives `spec` its full detail;
/// `rotated` when EXIF orientation turns the picture by 90 degrees (the spec applies after).
fn needed(w: u32, h: u32, spec: ThumbSpec, rotated: bool) -> (u16, u16) {
    let (sw, sh) = (f64::from(w.max(1)), f64::from(h.max(1)));
    let (ow, oh) = if rotated { (sh, sw) } else { (sw, sh) };
    let (tw, th) = (f64::from(spec.width), f64::from(spec.height));
    let scale = match (spec.width, spec.height, spec.mode) {
        (0, _, _) => th / oh,
        (_, 0, _) => tw / ow,
        (_, _, Mode::Fit) => (tw / ow).min(th / oh),
        _ => (tw / ow).max(th / oh),
    }
    .min(1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let side = |v: f64| (v * scale).ceil().clamp(1.0, f64::from(u16::MAX)) as u16;
    (side(sw), side(sh))
}

/// Decodes a JPEG with DCT scaling so that it is at least `(w, h)` (or its full size);
/// `None` when the scaled decoder cannot take it (the full decoder is used instead).
fn jpeg_scaled(src: &[u8], (w, h): (u16, u16)) -> Option<DynamicImage> {
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(src));
    d.read_info().ok()?;
    d.scale(w, h).ok()?;
    let pixels = d.decode().ok()?;
    let info = d.info()?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => {
            image::RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
        }
        jpeg_decoder::PixelFormat::L8 => {
            image::GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
        }
        // CMYK and 16-bit JPEGs go through the full decoder.
        _ => None,
    }
}

/// Pixel layouts the resizer and every encoder take: 8-bit RGB or RGBA (or luma).
fn normalise(img: DynamicImage) -> DynamicImage {
    match img {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) | DynamicImage::ImageLuma8(_) => {
            img
        }
        i if i.color().has_alpha() => DynamicImage::ImageRgba8(i.to_rgba8()),
        i => DynamicImage::ImageRgb8(i.to_rgb8()),
    }
}

/// Resizes `img`, which shows a picture of `true_size` (it may have been decoded smaller).
fn resize(
    img: &DynamicImage,
    true_size: (u32, u32),
    spec: ThumbSpec,
) -> Result<DynamicImage, FilesError> {
    let (sw, sh) = (f64::from(true_size.0), f64::from(true_size.1));
    let (kx, ky) = (
        f64::from(img.width()) / sw.max(1.0),
        f64::from(img.height()) / sh.max(1.0),
    );
    if sw < 1.0 || sh < 1.0 {
        return Err(FilesError::Image("empty image".into()));
    }
    let (tw, th) = (f64::from(spec.width), f64::from(spec.height));
    // The destination size and the crop box of the source.
    let (dw, dh, crop) = if spec.width == 0 {
        ((sw * th / sh).round().max(1.0), th, None)
    } else if spec.height == 0 {
        (tw, (sh * tw / sw).round().max(1.0), None)
    } else if spec.mode == Mode::Fit {
        // Fit inside, never enlarge; the other side is truncated, as PocketBase's imaging does.
        if sw <= tw && sh <= th {
            (sw, sh, None)
        } else if sw / sh > tw / th {
            (tw, (tw / (sw / sh)).floor().max(1.0), None)
        } else {
            ((th * (sw / sh)).floor().max(1.0), th, None)
        }
    } else {
        let scale = (tw / sw).max(th / sh);
        let (cw, ch) = (tw / scale, th / scale);
        let left = (sw - cw) / 2.0;
        let top = match spec.mode {
            Mode::Top => 0.0,
            Mode::Bottom => sh - ch,
            _ => (sh - ch) / 2.0,
        };
        (tw, th, Some((left, top, cw, ch)))
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (dw, dh) = (dw as u32, dh as u32);
    let mut dst = DynamicImage::new(dw, dh, img.color());
    let mut opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    if let Some((l, t, w, h)) = crop {
        opts = opts.crop(l * kx, t * ky, w * kx, h * ky);
    }
    Resizer::new()
        .resize(img, &mut dst, &opts)
        .map_err(|e| FilesError::Image(e.to_string()))?;
    Ok(dst)
}

/// libwebp's quality for thumbnails (0–100; cwebp's default is 75).
const WEBP_QUALITY: f32 = 82.0;

fn encode(img: &DynamicImage, format: ImageFormat) -> Result<Bytes, FilesError> {
    let mut out = Cursor::new(Vec::new());
    let bad = |e: image::ImageError| FilesError::Image(e.to_string());
    match format {
        ImageFormat::Jpeg => {
            let rgb = DynamicImage::ImageRgb8(img.to_rgb8());
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
            rgb.write_with_encoder(enc).map_err(bad)?;
        }
        ImageFormat::Png => {
            let enc = image::codecs::png::PngEncoder::new_with_quality(
                &mut out,
                image::codecs::png::CompressionType::Default,
                image::codecs::png::FilterType::Adaptive,
            );
            img.write_with_encoder(enc).map_err(bad)?;
        }
        ImageFormat::Gif => {
            let rgba = img.to_rgba8();
            let mut enc = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 10);
            enc.encode(
                rgba.as_raw(),
                rgba.width(),
                rgba.height(),
                image::ExtendedColorType::Rgba8,
            )
            .map_err(bad)?;
        }
        ImageFormat::WebP => {
            // Lossy, as photographs want (a lossless thumbnail is about PNG's size).
            let encoded = match img {
                DynamicImage::ImageRgba8(i) => {
                    webp::Encoder::from_rgba(i.as_raw(), i.width(), i.height()).encode(WEBP_QUALITY)
                }
                other => {
                    let rgb = other.to_rgb8();
                    webp::Encoder::from_rgb(rgb.as_raw(), rgb.width(), rgb.height())
                        .encode(WEBP_QUALITY)
                }
            };
            return Ok(Bytes::copy_from_slice(&encoded));
        }
        other => {
            return Err(FilesError::Image(format!(
                "thumbnails are not made from {other:?} images"
            )));
        }
    }
    Ok(Bytes::from(out.into_inner()))
}

type Flight = Arc<OnceCell<Result<(), String>>>;

/// Makes thumbnails on demand and keeps them in the store: once per thumbnail, with at most
/// `workers` being made at a time.
pub struct Thumbs {
    flights: Mutex<HashMap<String, Flight>>,
    workers: Semaphore,
    limits: ThumbLimits,
}

impl Thumbs {
    pub fn new(workers: usize, limits: ThumbLimits) -> Thumbs {
        Thumbs {
            flights: Mutex::new(HashMap::new()),
            workers: Semaphore::new(workers.max(1)),
            limits,
        }
    }

    /// Makes sure `thumb_key` holds the `spec` thumbnail of `source_key`. Returns false when
    /// it cannot be made (the caller serves the original, as PocketBase does); the reason is
    /// logged once per attempt.
    pub async fn ensure(
        &self,
        store: &FileStore,
        source_key: &str,
        thumb_key: &str,
        spec: ThumbSpec,
    ) -> bool {
        if store.head(thumb_key).await.is_ok() {
            return true;
        }
        let flight = {
            let Ok(mut f) = self.flights.lock() else {
                return false;
            };
            f.entry(thumb_key.to_owned()).or_default().clone()
        };
        let result = flight
            .get_or_init(|| self.make_and_store(store, source_key, thumb_key, spec))
            .await
            .clone();
        if let Ok(mut f) = self.flights.lock()
            && f.get(thumb_key).is_some_and(|g| Arc::ptr_eq(g, &flight))
        {
            f.remove(thumb_key);
        }
        match result {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(source = source_key, "thumbnail not made: {why}");
                false
            }
        }
    }

    async fn make_and_store(
        &self,
        store: &FileStore,
        source_key: &str,
        thumb_key: &str,
        spec: ThumbSpec,
    ) -> Result<(), String> {
        // Another flight may have finished between the check and this one starting.
        if store.head(thumb_key).await.is_ok() {
            return Ok(());
        }
        let _permit = self.workers.acquire().await.map_err(|e| e.to_string())?;
        let src = store
            .read_all(source_key, self.limits.max_bytes)
            .await
            .map_err(|e| e.to_string())?;
        let max_pixels = self.limits.max_pixels;
        let job = tokio::task::spawn_blocking(move || make(&src, spec, max_pixels));
        let thumb = match tokio::time::timeout(self.limits.timeout, job).await {
            Err(_) => return Err("took longer than the thumbnail time limit".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(r)) => r.map_err(|e| e.to_string())?,
        };
        store.put(thumb_key, thumb).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_pocketbase_writes_them() {
        let s = |w, h, mode| {
            Some(ThumbSpec {
                width: w,
                height: h,
                mode,
            })
        };
        assert_eq!(ThumbSpec::parse("100x100"), s(100, 100, Mode::Center));
        assert_eq!(ThumbSpec::parse("100x50t"), s(100, 50, Mode::Top));
        assert_eq!(ThumbSpec::parse("100x50b"), s(100, 50, Mode::Bottom));
        assert_eq!(ThumbSpec::parse("100x50f"), s(100, 50, Mode::Fit));
        assert_eq!(ThumbSpec::parse("0x50"), s(0, 50, Mode::Center));
        assert_eq!(ThumbSpec::parse("50x0"), s(50, 0, Mode::Center));
        for bad in [
            "", "x", "0x0", "100", "100x", "ax1", "1x1q", "0x50f", "-1x5", "999999x1",
        ] {
            assert_eq!(ThumbSpec::parse(bad), None, "{bad}");
        }
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                u8::try_from(x % 256).unwrap(),
                u8::try_from(y % 256).unwrap(),
                7,
            ])
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn dims(b: &[u8]) -> (u32, u32, ImageFormat) {
        let r = ImageReader::new(Cursor::new(b))
            .with_guessed_format()
            .unwrap();
        let f = r.format().unwrap();
        let i = r.decode().unwrap();
        (i.width(), i.height(), f)
    }

    #[test]
    fn every_mode_gives_the_size_pocketbase_gives() {
        let src = png(64, 48);
        let t = |s: &str| dims(&make(&src, ThumbSpec::parse(s).unwrap(), 1 << 20).unwrap());
        assert_eq!(t("100x100"), (100, 100, ImageFormat::Png));
        assert_eq!(t("32x32t"), (32, 32, ImageFormat::Png));
        assert_eq!(t("32x32f"), (32, 24, ImageFormat::Png));
        assert_eq!(t("30x30f"), (30, 22, ImageFormat::Png));
        // A 12-megapixel JPEG decodes at 1/8 for a 300x300 thumbnail, and still fills it.
        let spec = ThumbSpec::parse("300x300").unwrap();
        assert_eq!(needed(4000, 3000, spec, false), (400, 300));
        assert_eq!(needed(3000, 4000, spec, true), (300, 400));
        assert_eq!(
            needed(160, 90, ThumbSpec::parse("500x500").unwrap(), false),
            (160, 90)
        );
        let mut jpeg = Cursor::new(Vec::new());
        image::DynamicImage::new_rgb8(1600, 1200)
            .write_to(&mut jpeg, ImageFormat::Jpeg)
            .unwrap();
        let small = jpeg_scaled(jpeg.get_ref(), needed(1600, 1200, spec, false)).unwrap();
        assert_eq!((small.width(), small.height()), (400, 300));
        let thumb = dims(&make(jpeg.get_ref(), spec, 1 << 24).unwrap());
        assert_eq!(thumb, (300, 300, ImageFormat::Jpeg));
        assert_eq!(t("100x100f"), (64, 48, ImageFormat::Png));
        assert_eq!(t("0x24"), (32, 24, ImageFormat::Png));
        assert_eq!(t("32x0"), (32, 24, ImageFormat::Png));
    }

    /// Mean SSIM of two equally sized images' luma, over 8x8 windows (Wang et al., 2004).
    fn ssim(a: &DynamicImage, b: &DynamicImage) -> f64 {
        let (a, b) = (a.to_luma8(), b.to_luma8());
        assert_eq!(a.dimensions(), b.dimensions());
        let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
        let (w, h) = a.dimensions();
        let (mut total, mut n) = (0.0, 0.0);
        for y0 in (0..h - 7).step_by(4) {
            for x0 in (0..w - 7).step_by(4) {
                let px = |img: &image::GrayImage, i: u32| {
                    f64::from(img.get_pixel(x0 + i % 8, y0 + i / 8)[0])
                };
                let ma = (0..64).map(|i| px(&a, i)).sum::<f64>() / 64.0;
                let mb = (0..64).map(|i| px(&b, i)).sum::<f64>() / 64.0;
                let (mut va, mut vb, mut cov) = (0.0, 0.0, 0.0);
                for i in 0..64 {
                    let (da, db) = (px(&a, i) - ma, px(&b, i) - mb);
                    va += da * da;
                    vb += db * db;
                    cov += da * db;
                }
                let (va, vb, cov) = (va / 63.0, vb / 63.0, cov / 63.0);
                total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                    / ((ma * ma + mb * mb + c1) * (va + vb + c2));
                n += 1.0;
            }
        }
        total / n
    }

    #[test]
    fn webp_thumbnails_are_small_and_faithful() {
        // A photo-like picture: smooth colour, hard edges (discs) and mild sensor grain.
        let src = image::RgbImage::from_fn(1200, 900, |x, y| {
            let (fx, fy) = (f64::from(x) / 1200.0, f64::from(y) / 900.0);
            let grain =
                f64::from((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 13) - 6.0;
            let disc =
                |cx: f64, cy: f64, r: f64| ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt() < r;
            let base = if disc(0.3, 0.4, 0.15) {
                [220.0, 60.0, 40.0]
            } else if disc(0.7, 0.6, 0.2) {
                [30.0, 90.0, 200.0]
            } else {
                [
                    120.0 + 100.0 * (fx * 9.0).sin(),
                    120.0 + 90.0 * (fy * 7.0).cos(),
                    100.0 + 80.0 * ((fx + fy) * 5.0).sin(),
                ]
            };
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let c = |v: f64| (v + grain).clamp(0.0, 255.0) as u8;
            image::Rgb([c(base[0]), c(base[1]), c(base[2])])
        });
        let mut webp = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(src.clone())
            .write_to(&mut webp, ImageFormat::WebP)
            .unwrap();
        let spec = ThumbSpec::parse("300x300").unwrap();
        let thumb = make(webp.get_ref(), spec, 1 << 24).unwrap();
        assert_eq!(image::guess_format(&thumb).unwrap(), ImageFormat::WebP);
        let got = image::load_from_memory(&thumb).unwrap();
        assert_eq!((got.width(), got.height()), (300, 300));
        // The reference: a Lanczos3 resize of the same crop, and PocketBase's output (PNG).
        let mut reference = DynamicImage::new_rgb8(300, 300);
        let opts = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .crop(150.0, 0.0, 900.0, 900.0);
        Resizer::new()
            .resize(&DynamicImage::ImageRgb8(src), &mut reference, &opts)
            .unwrap();
        let png = encode(&reference, ImageFormat::Png).unwrap();
        let score = ssim(&got, &reference);
        assert!(score >= 0.95, "SSIM {score:.3}");
        assert!(
            thumb.len() * 2 <= png.len(),
            "WebP {} bytes vs PNG {} bytes",
            thumb.len(),
            png.len()
        );
    }

    #[test]
    fn exif_orientation_is_applied_before_sizing() {
        let mut jpeg = Cursor::new(Vec::new());
        DynamicImage::new_rgb8(160, 90)
            .write_to(&mut jpeg, ImageFormat::Jpeg)
            .unwrap();
        let plain = jpeg.into_inner();
        // APP1 with an EXIF IFD0 holding only Orientation = 6 (rotate 90 degrees clockwise).
        let mut app1 = vec![0xff, 0xe1, 0, 34];
        app1.extend_from_slice(b"Exif\0\0II\x2a\0\x08\0\0\0");
        app1.extend_from_slice(&[1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
        let mut rotated = plain[..2].to_vec();
        rotated.extend_from_slice(&app1);
        rotated.extend_from_slice(&plain[2..]);
        let t =
            |src: &[u8], s: &str| dims(&make(src, ThumbSpec::parse(s).unwrap(), 1 << 20).unwrap());
        assert_eq!(t(&plain, "0x20").0, 36);
        // Turned upright the picture is 90x160: 20 high is 11 wide.
        assert_eq!(t(&rotated, "0x20"), (11, 20, ImageFormat::Jpeg));
        assert_eq!(t(&rotated, "40x30"), (40, 30, ImageFormat::Jpeg));
    }

    #[test]
    fn bombs_and_garbage_are_refused() {
        let src = png(64, 48);
        assert!(matches!(
            make(&src, ThumbSpec::parse("10x10").unwrap(), 1000),
            Err(FilesError::TooLarge { .. })
        ));
        assert!(matches!(
            make(
                b"\xff\xd8\xff\xe0garbage",
                ThumbSpec::parse("10x10").unwrap(),
                1 << 20
            ),
            Err(FilesError::Image(_))
        ));
        assert!(make(&src[..40], ThumbSpec::parse("10x10").unwrap(), 1 << 20).is_err());
    }
}
