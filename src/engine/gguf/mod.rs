//! A GGUF reader of our own: header, metadata and tensor directory, with every length and
//! offset checked against the file, and tensors loaded one at a time as candle `QTensor`s.
//!
//! candle's own reader rejects a whole file as soon as one tensor has a type it does not know
//! (the IQ quants, for instance), without naming the tensor; this one parses every file and
//! reports the tensor and its type when the model asks for it. It depends only on
//! `engine::error`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::quantized::{ggml_file, GgmlDType, QTensor};
use candle_core::Device;
use sha2::{Digest, Sha256};

mod types;

pub use types::{TensorType, Value};

use crate::engine::error::{Error, Result};

const MAGIC: [u8; 4] = *b"GGUF";
/// Strings, arrays and tensor ranks above these limits are treated as corruption rather than
/// allocated.
const MAX_STRING: u64 = 1 << 30;
const MAX_ARRAY: u64 = 1 << 28;
const MAX_DIMS: u32 = 8;

/// One entry of the tensor directory.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub ttype: TensorType,
    /// Shape in candle's order (ggml's `ne` reversed): `(rows, cols)` for a matrix.
    pub dims: Vec<usize>,
    /// Offset of the data, relative to the start of the tensor data section.
    pub offset: u64,
    /// Size of the data in bytes (`None` for a type whose block layout is unknown).
    pub size: Option<u64>,
}

impl TensorInfo {
    pub fn elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// A parsed GGUF file: metadata and tensor directory. Tensor data is read on demand.
#[derive(Debug)]
pub struct Gguf {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    pub data_offset: u64,
    pub file_len: u64,
}

/// A reader that tracks its position and turns short reads into "truncated" errors.
struct Cursor<R> {
    r: R,
    pos: u64,
    len: u64,
    path: PathBuf,
}

impl<R: Read> Cursor<R> {
    fn corrupt(&self, what: impl Into<String>) -> Error {
        Error::Corrupt { path: self.path.clone(), what: what.into() }
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        if n > self.len.saturating_sub(self.pos) {
            return Err(self.corrupt(format!(
                "{what} needs {n} bytes at offset {} but the file ends at {}",
                self.pos, self.len
            )));
        }
        let mut buf = vec![0u8; n as usize];
        self.r.read_exact(&mut buf).map_err(|e| Error::io(&self.path, e))?;
        self.pos += n;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let v = self.bytes(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&v);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length or count: u32 in GGUF v1, u64 afterwards.
    fn len_field(&mut self, version: u32, what: &str) -> Result<u64> {
        if version == 1 {
            self.u32(what).map(u64::from)
        } else {
            self.u64(what)
        }
    }

    fn string(&mut self, version: u32, what: &str) -> Result<String> {
        let n = self.len_field(version, what)?;
        if n > MAX_STRING {
            return Err(self.corrupt(format!("{what} claims a string of {n} bytes")));
        }
        let bytes = self.bytes(n, what)?;
        // Some converters wrote invalid UTF-8 in token lists; keep the bytes readable.
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()))
    }

    fn value(&mut self, vtype: u32, version: u32, key: &str, depth: u32) -> Result<Value> {
        let v = match vtype {
            0 => Value::U8(u8::from_le_bytes(self.array(key)?)),
            1 => Value::I8(i8::from_le_bytes(self.array(key)?)),
            2 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            7 => Value::Bool(self.array::<1>(key)?[0] != 0),
            8 => Value::String(self.string(version, key)?),
            9 => {
                if depth > 2 {
                    return Err(self.corrupt(format!("metadata '{key}' nests arrays too deeply")));
                }
                let item_type = self.u32(key)?;
                let n = self.len_field(version, key)?;
                if n > MAX_ARRAY {
                    return Err(self.corrupt(format!("metadata '{key}' claims {n} array items")));
                }
                let mut items = Vec::with_capacity(n.min(1 << 20) as usize);
                for _ in 0..n {
                    items.push(self.value(item_type, version, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            other => {
                return Err(self.corrupt(format!("metadata '{key}' has unknown value type {other}")))
            }
        };
        Ok(v)
    }
}

impl Gguf {
    /// Parses the header, metadata and tensor directory of `path`, checking that every tensor's
    /// data lies inside the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        // Checked before opening: opening a FIFO blocks until a writer comes.
        let kind = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?.file_type();
        if !kind.is_file() {
            let what = if kind.is_dir() { "a directory" } else { "not a regular file" };
            return Err(Error::Source(format!("'{}' is {what}, not a GGUF file", path.display())));
        }
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let mut c = Cursor { r: BufReader::with_capacity(1 << 20, file), pos: 0, len, path };
        if len < 4 {
            let mut magic = [0u8; 4];
            let got = c.bytes(len, "magic")?;
            magic[..got.len()].copy_from_slice(&got);
            return Err(Error::NotGguf { path: c.path, magic });
        }
        let magic: [u8; 4] = c.array("magic")?;
        if magic != MAGIC {
            return Err(Error::NotGguf { path: c.path, magic });
        }
        let version = c.u32("version")?;
        if !(1..=3).contains(&version) {
            return Err(c.corrupt(format!("unsupported GGUF version {version}")));
        }
        let n_tensors = c.len_field(version, "tensor count")?;
        let n_kv = c.len_field(version, "metadata count")?;
        if n_tensors > 1 << 24 || n_kv > 1 << 24 {
            return Err(c.corrupt(format!("implausible counts: {n_tensors} tensors, {n_kv} keys")));
        }
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string(version, "metadata key")?;
            let vtype = c.u32(&key)?;
            let value = c.value(vtype, version, &key, 0)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = c.string(version, "tensor name")?;
            let n_dims = c.u32(&name)?;
            if n_dims > MAX_DIMS {
                return Err(c.corrupt(format!("tensor '{name}' claims {n_dims} dimensions")));
            }
            let mut ne = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                ne.push(c.len_field(version, &name)? as usize);
            }
            let ttype = TensorType::from_ggml(c.u32(&name)?);
            let offset = c.u64(&name)?;
            ne.reverse();
            // candle builds an empty slice from the data pointer of a zero-element tensor
            // (undefined behaviour); no model has one.
            if ne.contains(&0) {
                return Err(c.corrupt(format!("tensor '{name}' has a dimension of 0: {ne:?}")));
            }
            if ne.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_none() {
                return Err(c.corrupt(format!(
                    "tensor '{name}' claims dimensions {ne:?}, more elements than can be counted"
                )));
            }
            let mut info = TensorInfo { name, ttype, dims: ne, offset, size: None };
            if let TensorType::Supported(dt) = ttype {
                let n = info.elements();
                if n % dt.block_size() != 0 {
                    return Err(c.corrupt(format!(
                        "tensor '{}' has {n} elements, not a multiple of the {} block size {}",
                        info.name,
                        ttype.name(),
                        dt.block_size()
                    )));
                }
                info.size = Some((n / dt.block_size() * dt.type_size()) as u64);
            }
            tensors.push(info);
        }
        let alignment = match metadata.get("general.alignment").and_then(Value::as_u64) {
            Some(a) if a > 0 && a.is_power_of_two() => a,
            Some(a) => return Err(c.corrupt(format!("'general.alignment' is {a}"))),
            None => 32,
        };
        let data_offset = c.pos.div_ceil(alignment) * alignment;
        for t in &tensors {
            let end =
                data_offset.checked_add(t.offset).and_then(|s| s.checked_add(t.size.unwrap_or(0)));
            match end {
                Some(end) if end <= len => {}
                _ => {
                    return Err(c.corrupt(format!(
                        "tensor '{}' needs data up to byte {} but the file has {len} bytes",
                        t.name,
                        data_offset.saturating_add(t.offset).saturating_add(t.size.unwrap_or(0))
                    )))
                }
            }
        }
        let index = tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(Gguf { path: c.path, version, metadata, tensors, index, data_offset, file_len: len })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// `general.architecture`, required.
    pub fn architecture(&self) -> Result<&str> {
        self.str("general.architecture")
    }

    pub fn str(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            Some(v) => v.as_str().ok_or_else(|| Error::metadata(key, "is not a string")),
            None => Err(Error::metadata(key, "is missing")),
        }
    }

    pub fn u64(&self, key: &str) -> Result<u64> {
        match self.get(key) {
            Some(v) => v.as_u64().ok_or_else(|| {
                Error::metadata(key, format!("is not an unsigned integer ({})", v.summary()))
            }),
            None => Err(Error::metadata(key, "is missing")),
        }
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        self.u64(key).map(|v| v as usize)
    }

    /// `{arch}.block_count`, checked against the tensor directory: at least one block, and no
    /// more than the file has `blk.N.` tensors for (so an absurd count is one clear line rather
    /// than an allocation the size of the count).
    pub fn block_count(&self, arch: &str) -> Result<usize> {
        let key = format!("{arch}.block_count");
        let n = self.u64(&key)?;
        let in_file = self
            .tensors
            .iter()
            .filter_map(|t| t.name.strip_prefix("blk.")?.split('.').next()?.parse::<u64>().ok())
            .max()
            .map_or(0, |m| m + 1);
        if n == 0 || n > in_file {
            return Err(Error::metadata(
                key,
                format!("is {n}, but the file has tensors for {in_file} blocks"),
            ));
        }
        Ok(n as usize)
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        self.get(key).map(|_| self.usize(key)).transpose()
    }

    pub fn f64(&self, key: &str) -> Result<f64> {
        match self.get(key) {
            Some(v) => v.as_f64().ok_or_else(|| Error::metadata(key, "is not a number")),
            None => Err(Error::metadata(key, "is missing")),
        }
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key).map(|_| self.f64(key)).transpose()
    }

    pub fn opt_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    /// An array of strings (token lists, merges).
    pub fn str_array(&self, key: &str) -> Result<Vec<String>> {
        match self.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Error::metadata(key, format!("item {i} is not a string")))
                })
                .collect(),
            Some(_) => Err(Error::metadata(key, "is not an array")),
            None => Err(Error::metadata(key, "is missing")),
        }
    }

    /// An array of integers (token types).
    pub fn i64_array(&self, key: &str) -> Result<Vec<i64>> {
        match self.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64()
                        .ok_or_else(|| Error::metadata(key, format!("item {i} is not an integer")))
                })
                .collect(),
            Some(_) => Err(Error::metadata(key, "is not an array")),
            None => Err(Error::metadata(key, "is missing")),
        }
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The first tensor whose type candle cannot compute with, as an error naming it.
    pub fn check_supported(&self) -> Result<()> {
        match self.tensors.iter().find(|t| matches!(t.ttype, TensorType::Unsupported(_))) {
            Some(t) => {
                Err(Error::UnsupportedTensorType { tensor: t.name.clone(), dtype: t.ttype.name() })
            }
            None => Ok(()),
        }
    }

    /// The most common tensor type among matrices (what people call the file's quantization).
    pub fn dominant_type(&self) -> String {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for t in self.tensors.iter().filter(|t| t.dims.len() >= 2) {
            *counts.entry(t.ttype.name()).or_default() += 1;
        }
        counts.into_iter().max_by_key(|(_, n)| *n).map(|(k, _)| k).unwrap_or_else(|| "none".into())
    }

    /// Opens the file for reading tensor data.
    pub fn reader(&self) -> Result<TensorReader<'_>> {
        let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(TensorReader { gguf: self, file })
    }

    /// SHA-256 over the header (metadata and tensor directory) and up to 64 KiB sampled from
    /// each of 16 evenly spaced places in the tensor data: cheap on a 400 GB file, and it
    /// changes whenever the weights do in practice.
    pub fn fingerprint(&self) -> Result<String> {
        let mut f = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut read_at = |f: &mut File, at: u64, n: usize, h: &mut Sha256| -> Result<()> {
            f.seek(SeekFrom::Start(at)).map_err(|e| Error::io(&self.path, e))?;
            let n = n.min(buf.len());
            let got = read_up_to(f, &mut buf[..n]).map_err(|e| Error::io(&self.path, e))?;
            h.update(&buf[..got]);
            Ok(())
        };
        // The header, in chunks.
        let mut at = 0;
        while at < self.data_offset {
            let n = (self.data_offset - at).min(64 * 1024) as usize;
            read_at(&mut f, at, n, &mut h)?;
            at += n as u64;
        }
        let data_len = self.file_len.saturating_sub(self.data_offset);
        for i in 0..16u64 {
            read_at(&mut f, self.data_offset + data_len * i / 16, 64 * 1024, &mut h)?;
        }
        h.update(self.file_len.to_le_bytes());
        Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Reads tensors of one GGUF file.
pub struct TensorReader<'a> {
    gguf: &'a Gguf,
    file: File,
}

impl TensorReader<'_> {
    /// The raw bytes of a tensor and its info.
    pub fn raw(&mut self, name: &str) -> Result<(&TensorInfo, GgmlDType, Vec<u8>)> {
        let gguf = self.gguf;
        let info = gguf
            .tensor_info(name)
            .ok_or_else(|| Error::tensor(name, "is missing from the file"))?;
        let (dt, size) = match (info.ttype, info.size) {
            (TensorType::Supported(dt), Some(size)) => (dt, size),
            _ => {
                return Err(Error::UnsupportedTensorType {
                    tensor: info.name.clone(),
                    dtype: info.ttype.name(),
                })
            }
        };
        self.file
            .seek(SeekFrom::Start(gguf.data_offset + info.offset))
            .map_err(|e| Error::io(&gguf.path, e))?;
        let mut buf = vec![0u8; size as usize];
        self.file.read_exact(&mut buf).map_err(|e| Error::io(&gguf.path, e))?;
        Ok((info, dt, buf))
    }

    /// Loads a tensor as a `QTensor` on `device`.
    pub fn qtensor(&mut self, name: &str, device: &Device) -> Result<QTensor> {
        let (info, dt, buf) = self.raw(name)?;
        let dims = info.dims.clone();
        ggml_file::qtensor_from_ggml(dt, &buf, dims, device)
            .map_err(|e| Error::tensor(name, format!("could not be loaded: {e}")))
    }

    /// Loads a tensor dequantized to f32 with the expected shape.
    pub fn f32_tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        device: &Device,
    ) -> Result<candle_core::Tensor> {
        let q = self.qtensor(name, device)?;
        let dims = q.shape().dims().to_vec();
        if dims != shape {
            return Err(Error::tensor(name, format!("has shape {dims:?}, expected {shape:?}")));
        }
        Ok(q.dequantize(device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_follow_llama_cpp() {
        assert_eq!(TensorType::from_ggml(12).name(), "Q4_K");
        assert_eq!(TensorType::from_ggml(16).name(), "IQ2_XXS");
        assert_eq!(TensorType::from_ggml(3).name(), "Q4_1");
        assert!(matches!(TensorType::from_ggml(16), TensorType::Unsupported(16)));
    }

    #[test]
    fn short_files_are_not_gguf() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gguf");
        std::fs::write(&p, b"GG").unwrap();
        assert!(matches!(Gguf::open(&p), Err(Error::NotGguf { .. })));
        std::fs::write(&p, b"PK\x03\x04rest").unwrap();
        assert!(matches!(Gguf::open(&p), Err(Error::NotGguf { .. })));
        std::fs::write(&p, b"GGUF\x03\x00\x00\x00\x01").unwrap();
        assert!(matches!(Gguf::open(&p), Err(Error::Corrupt { .. })));
    }
}
