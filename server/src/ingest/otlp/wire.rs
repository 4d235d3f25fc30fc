//! The protobuf wire format, read in place: keys, varints, fixed-width numbers and
//! length-delimited fields as slices of the body, and the skipping of unknown fields
//! (groups included) under `prost`'s recursion limit, with `prost`'s rules for what is
//! malformed (a varint of more than ten bytes or past 64 bits, a key past 32 bits, tag
//! 0, wire types 6 and 7, a length past the end). It allocates nothing and never
//! knows which message it reads.

/// Why bytes are not a protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub &'static str);

/// How deep messages may nest, as `prost` counts: a message field (or an unknown
/// field) read at this many levels below the top is refused.
pub const RECURSION_LIMIT: u32 = 100;

/// The six wire types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    Varint,
    Fixed64,
    Len,
    StartGroup,
    EndGroup,
    Fixed32,
}

/// A reader over one message's fields.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(message: &'a [u8]) -> Self {
        Reader { rest: message }
    }

    /// The next field's number and wire type, or `None` at the end of the message.
    #[inline]
    pub fn key(&mut self) -> Result<Option<(u32, WireType)>, Malformed> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| Malformed("a field key past 32 bits"))?;
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            _ => return Err(Malformed("an unknown wire type")),
        };
        match key >> 3 {
            0 => Err(Malformed("a field numbered 0")),
            number => Ok(Some((number, wire_type))),
        }
    }

    /// A varint. One or two bytes (keys, lengths below 16 KiB, small numbers: most
    /// varints) are read inline where it is called; longer ones by `long_varint`.
    #[inline]
    pub fn varint(&mut self) -> Result<u64, Malformed> {
        match self.rest {
            [byte, tail @ ..] if *byte < 0x80 => {
                self.rest = tail;
                Ok(u64::from(*byte))
            }
            [low, high, tail @ ..] if *high < 0x80 => {
                self.rest = tail;
                Ok(u64::from(low & 0x7f) | u64::from(*high) << 7)
            }
            _ => self.long_varint(),
        }
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for (index, &byte) in self.rest.iter().enumerate().take(10) {
            if index == 9 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[index + 1..];
                return Ok(value);
            }
        }
        Err(Malformed("an invalid varint"))
    }

    #[inline]
    fn take(&mut self, length: usize) -> Result<&'a [u8], Malformed> {
        let (taken, rest) = self
            .rest
            .split_at_checked(length)
            .ok_or(Malformed("a field longer than its message"))?;
        self.rest = rest;
        Ok(taken)
    }

    #[inline]
    pub fn fixed64(&mut self) -> Result<u64, Malformed> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().unwrap_or_default()))
    }

    #[inline]
    pub fn fixed32(&mut self) -> Result<u32, Malformed> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes(bytes.try_into().unwrap_or_default()))
    }

    /// A length-delimited field's bytes.
    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let length = usize::try_from(self.varint()?)
            .map_err(|_| Malformed("a field longer than its message"))?;
        self.take(length)
    }

    /// A string field's text.
    #[inline]
    pub fn string(&mut self) -> Result<&'a str, Malformed> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Malformed("a string that is not UTF-8"))
    }

    /// Skips a field of `wire_type` read `depth_left` levels above the recursion limit
    /// (0: refused, as `prost` refuses it).
    pub fn skip(
        &mut self,
        number: u32,
        wire_type: WireType,
        depth_left: u32,
    ) -> Result<(), Malformed> {
        if depth_left == 0 {
            return Err(Malformed("nested past the recursion limit"));
        }
        match wire_type {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.take(8).map(drop),
            WireType::Fixed32 => self.take(4).map(drop),
            WireType::Len => self.bytes().map(drop),
            WireType::StartGroup => loop {
                match self.key()? {
                    None => return Err(Malformed("a group without its end")),
                    Some((inner, WireType::EndGroup)) if inner == number => return Ok(()),
                    Some((_, WireType::EndGroup)) => {
                        return Err(Malformed("a group ended by another's tag"))
                    }
                    Some((inner, inner_type)) => self.skip(inner, inner_type, depth_left - 1)?,
                }
            },
            WireType::EndGroup => Err(Malformed("a group end without its start")),
        }
    }
}

/// The length-delimited fields numbered `number` of a message already checked (see
/// `protobuf::check`), in order; every other field is skipped.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    reader: Reader<'a>,
    number: u32,
}

impl<'a> Fields<'a> {
    pub fn new(message: &'a [u8], number: u32) -> Self {
        Fields {
            reader: Reader::new(message),
            number,
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<&'a [u8], Malformed>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (number, wire_type) = match self.reader.key() {
                Ok(Some(key)) => key,
                Ok(None) => return None,
                Err(error) => return Some(Err(error)),
            };
            let read = if number == self.number && wire_type == WireType::Len {
                return Some(self.reader.bytes());
            } else {
                self.reader.skip(number, wire_type, RECURSION_LIMIT)
            };
            if let Err(error) = read {
                self.reader = Reader::new(&[]);
                return Some(Err(error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_read_as_prost_reads_them() {
        let read = |bytes: &[u8]| Reader::new(bytes).varint();
        assert_eq!(read(&[0x96, 0x01]), Ok(150));
        assert_eq!(read(&[0x00, 0x05]), Ok(0));
        assert_eq!(read(&[0x7f]), Ok(127));
        assert_eq!(read(&[0xff, 0x7f]), Ok(16_383));
        assert_eq!(read(&[0x80, 0x80, 0x01]), Ok(16_384));
        assert!(read(&[]).is_err());
        assert_eq!(
            read(&[0xff; 9].iter().chain(&[0x01]).copied().collect::<Vec<_>>()),
            Ok(u64::MAX)
        );
        assert!(read(&[0xff; 9].iter().chain(&[0x02]).copied().collect::<Vec<_>>()).is_err());
        assert!(read(&[0x80; 11]).is_err());
        assert!(read(&[0x80]).is_err());
    }

    proptest::proptest! {
        /// Any bytes: the same value and the same bytes left as `prost`, or both refuse.
        #[test]
        fn varints_of_any_bytes_are_read_as_prost_reads_them(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![0u8..0x80, 0x80u8..=0xff, proptest::strategy::Just(0x01)],
                0..14,
            )
        ) {
            let mut reader = Reader::new(&bytes);
            let mut buffer = bytes.as_slice();
            let expected = prost::encoding::decode_varint(&mut buffer);
            match (reader.varint(), expected) {
                (Ok(value), Ok(expected)) => {
                    proptest::prop_assert_eq!(value, expected);
                    proptest::prop_assert_eq!(reader.rest.len(), buffer.len());
                }
                (Err(_), Err(_)) => {}
                (got, expected) => proptest::prop_assert!(false, "{got:?} {expected:?}"),
            }
        }
    }

    #[test]
    fn keys_refuse_tag_zero_and_unknown_wire_types() {
        assert_eq!(Reader::new(&[0x08]).key(), Ok(Some((1, WireType::Varint))));
        assert!(Reader::new(&[0x00]).key().is_err());
        assert!(Reader::new(&[0x0e]).key().is_err());
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x10]).key().is_err());
    }

    #[test]
    fn groups_are_skipped_under_the_recursion_limit() {
        // Field 1 group holding field 2 varint, then its end.
        let group = [0x0b, 0x10, 0x01, 0x0c];
        let mut reader = Reader::new(&group);
        let (number, wire_type) = reader.key().unwrap().unwrap();
        assert_eq!(reader.skip(number, wire_type, 2), Ok(()));
        let mut reader = Reader::new(&group);
        let (number, wire_type) = reader.key().unwrap().unwrap();
        assert!(reader.skip(number, wire_type, 1).is_err());
        let mut reader = Reader::new(&group[..3]);
        let (number, wire_type) = reader.key().unwrap().unwrap();
        assert!(reader.skip(number, wire_type, 5).is_err());
    }
}
