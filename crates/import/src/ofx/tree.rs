//! One tolerant tokenizer for OFX 1 (SGML) and OFX 2 (XML), building a small element tree.
//!
//! SGML leaves are never closed: a leaf's value is the text up to the next `<`. A tag followed only by
//! whitespace opens an aggregate, unless it turns out to be an empty leaf (SGML `<FITID>` with no value),
//! which shows when an enclosing aggregate closes over it. Records (transactions, positions) are handed to a
//! [`Sink`] as they close and dropped from the tree, so memory stays flat however long the file is.

use std::borrow::Cow;

use memchr::{memchr, memmem};

use crate::error::{ParseError, snippet};
use crate::warnings::Warnings;

/// "No node" in the tree's links.
const NONE: u32 = u32::MAX;

/// The deepest nesting accepted. Real OFX nests about ten deep; a bound keeps closing-tag lookups cheap on
/// hostile input.
const MAX_DEPTH: usize = 64;

/// How many of the latest children a stray closing tag is compared with (it normally closes the last leaf).
const RECENT_CHILDREN: usize = 8;

/// An element: an aggregate (children, no value) or a leaf (a value, no children).
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    /// The tag name as written.
    pub(crate) name: &'a str,
    /// The raw (entity-encoded, trimmed) value of a leaf; `None` for an aggregate or an empty element.
    value: Option<&'a str>,
    /// The 1-based line of the opening tag.
    pub(crate) line: u32,
    first_child: u32,
    last_child: u32,
    next_sibling: u32,
    prev_sibling: u32,
}

/// The elements read so far, in document order.
#[derive(Debug, Default)]
pub(crate) struct Tree<'a> {
    nodes: Vec<Node<'a>>,
}

/// Receives each aggregate as it closes and may take it over (then it leaves the tree).
pub(crate) trait Sink<'a> {
    /// `id` has closed; `ancestors` are the still-open elements, outermost first. Returns whether the sink
    /// consumed the element, so the tree can forget it.
    fn closed(&mut self, tree: &Tree<'a>, id: u32, ancestors: &[u32]) -> Result<bool, ParseError>;
}

impl<'a> Tree<'a> {
    /// The node `id`.
    pub(crate) fn node(&self, id: u32) -> Option<&Node<'a>> {
        self.nodes.get(id as usize)
    }

    /// The tag name of `id` ("" if there is no such node).
    pub(crate) fn name(&self, id: u32) -> &'a str {
        self.node(id).map_or("", |n| n.name)
    }

    /// The line of `id`'s opening tag.
    pub(crate) fn line(&self, id: u32) -> usize {
        self.node(id).map_or(0, |n| n.line as usize)
    }

    /// The children of `id`, in order.
    pub(crate) fn children(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        let first = self.node(id).map_or(NONE, |n| n.first_child);
        std::iter::successors(Some(first), move |&c| self.node(c).map(|n| n.next_sibling)).take_while(|&c| c != NONE)
    }

    /// The last few children of `id`, newest first.
    fn recent_children(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        let last = self.node(id).map_or(NONE, |n| n.last_child);
        std::iter::successors(Some(last), move |&c| self.node(c).map(|n| n.prev_sibling))
            .take_while(|&c| c != NONE)
            .take(RECENT_CHILDREN)
    }

    /// The first child of `id` named `name`.
    pub(crate) fn child(&self, id: u32, name: &str) -> Option<u32> {
        self.children(id).find(|&c| self.name(c) == name)
    }

    /// The element reached from `id` through children named `path`.
    pub(crate) fn path(&self, id: u32, path: &[&str]) -> Option<u32> {
        path.iter().try_fold(id, |at, name| self.child(at, name))
    }

    /// The value of `id` with entities decoded; empty for an aggregate or an empty element.
    pub(crate) fn text(&self, id: u32) -> Cow<'a, str> {
        decode_entities(self.node(id).and_then(|n| n.value).unwrap_or(""))
    }

    /// Every element under `id` (not `id` itself) named one of `names`, in document order, not looking inside
    /// a match.
    pub(crate) fn find_all(&self, id: u32, names: &[&str]) -> Vec<u32> {
        let mut found = Vec::new();
        let mut pending: Vec<u32> = self.children(id).collect();
        pending.reverse();
        while let Some(at) = pending.pop() {
            if names.contains(&self.name(at)) {
                found.push(at);
            } else {
                let start = pending.len();
                pending.extend(self.children(at));
                pending.get_mut(start..).map(<[u32]>::reverse);
            }
        }
        found
    }

    fn push(
        &mut self,
        parent: Option<u32>,
        name: &'a str,
        value: Option<&'a str>,
        line: u32,
    ) -> Result<u32, ParseError> {
        let id = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&id| id != NONE)
            .ok_or_else(|| ParseError::at_line(line as usize, "too many elements"))?;
        let mut prev_sibling = NONE;
        if let Some(parent) = parent.and_then(|p| self.nodes.get_mut(p as usize)) {
            prev_sibling = parent.last_child;
            parent.last_child = id;
            if parent.first_child == NONE {
                parent.first_child = id;
            }
        }
        if let Some(prev) = self.nodes.get_mut(prev_sibling as usize) {
            prev.next_sibling = id;
        }
        self.nodes.push(Node {
            name,
            value,
            line,
            first_child: NONE,
            last_child: NONE,
            next_sibling: NONE,
            prev_sibling,
        });
        Ok(id)
    }

    /// Forgets `id` and everything after it, which (as `id` has just closed) is exactly its subtree.
    fn remove_last_subtree(&mut self, parent: Option<u32>, id: u32) {
        let prev = self.node(id).map_or(NONE, |n| n.prev_sibling);
        if let Some(p) = parent.and_then(|p| self.nodes.get_mut(p as usize)) {
            p.last_child = prev;
            if prev == NONE {
                p.first_child = NONE;
            }
        }
        if let Some(prev) = self.nodes.get_mut(prev as usize) {
            prev.next_sibling = NONE;
        }
        self.nodes.truncate(id as usize);
    }

    /// Makes the open element `id` an empty leaf: its would-be children become its following siblings.
    fn make_empty_leaf(&mut self, parent: Option<u32>, id: u32) {
        let Some(node) = self.nodes.get_mut(id as usize) else { return };
        node.value = Some("");
        let (first, last) = (node.first_child, node.last_child);
        if first == NONE {
            return;
        }
        node.first_child = NONE;
        node.last_child = NONE;
        node.next_sibling = first;
        if let Some(child) = self.nodes.get_mut(first as usize) {
            child.prev_sibling = id;
        }
        // `id` was its parent's last child (it was still open), so its children now end the parent's list.
        if let Some(p) = parent.and_then(|p| self.nodes.get_mut(p as usize)) {
            p.last_child = last;
        }
    }

    fn is_empty(&self, id: u32) -> bool {
        self.node(id).is_some_and(|n| n.first_child == NONE && n.value.is_none())
    }

    fn has_children(&self, id: u32) -> bool {
        self.node(id).is_some_and(|n| n.first_child != NONE)
    }
}

/// Aggregates whose children must stay theirs even when the file forgets to close them. Any other unclosed
/// element is read as an empty leaf, which is what SGML files with an empty value look like.
fn is_known_aggregate(name: &str) -> bool {
    name.ends_with("RS")
        || name.ends_with("RQ")
        || name.ends_with("MSGSRSV1")
        || name.ends_with("MSGSRQV1")
        || name.ends_with("ACCTFROM")
        || name.ends_with("ACCTTO")
        || name.ends_with("TRANLIST")
        || name.ends_with("POSLIST")
        || matches!(
            name,
            "OFX"
                | "STATUS"
                | "FI"
                | "LEDGERBAL"
                | "AVAILBAL"
                | "INVBAL"
                | "INV401KBAL"
                | "BALLIST"
                | "BAL"
                | "STMTTRN"
                | "PAYEE"
                | "CURRENCY"
                | "ORIGCURRENCY"
                | "INVTRAN"
                | "INVBUY"
                | "INVSELL"
                | "SECID"
                | "INVPOS"
                | "INVBANKTRAN"
                | "SECLIST"
                | "SECINFO"
                | "STOCKINFO"
                | "MFINFO"
                | "DEBTINFO"
                | "OPTINFO"
                | "OTHERINFO"
                | "BUYSTOCK"
                | "BUYMF"
                | "BUYDEBT"
                | "BUYOPT"
                | "BUYOTHER"
                | "SELLSTOCK"
                | "SELLMF"
                | "SELLDEBT"
                | "SELLOPT"
                | "SELLOTHER"
                | "REINVEST"
                | "INCOME"
                | "INVEXPENSE"
                | "TRANSFER"
                | "JRNLFUND"
                | "JRNLSEC"
                | "MARGININTEREST"
                | "RETOFCAP"
                | "SPLIT"
                | "CLOSUREOPT"
                | "POSSTOCK"
                | "POSMF"
                | "POSDEBT"
                | "POSOPT"
                | "POSOTHER"
        )
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':')
}

/// Decodes the XML/SGML entities OFX uses (`&amp;` `&lt;` `&gt;` `&quot;` `&apos;` `&nbsp;` and numeric ones);
/// anything else stays as written.
pub(crate) fn decode_entities(raw: &str) -> Cow<'_, str> {
    if !raw.contains('&') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or(""));
        let after = rest.get(amp..).unwrap_or("");
        let entity = after.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = after.get(1..end)?;
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => '\u{a0}',
                _ => {
                    let code = if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                        u32::from_str_radix(hex, 16).ok()?
                    } else {
                        name.strip_prefix('#')?.parse().ok()?
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, end + 1))
        });
        match entity {
            Some((c, len)) => {
                out.push(c);
                rest = after.get(len..).unwrap_or("");
            }
            None => {
                out.push('&');
                rest = after.get(1..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn count_lines(text: &[u8]) -> u32 {
    // Saturating: a file of four billion lines is refused by size limits long before.
    u32::try_from(memchr::memchr_iter(b'\n', text).count()).unwrap_or(u32::MAX)
}

/// The tree builder's state while reading.
struct Builder<'a, 's, S: Sink<'a>> {
    tree: Tree<'a>,
    stack: Vec<u32>,
    /// The leaf just read, which a matching closing tag (`<NAME>x</NAME>`) closes.
    open_leaf: Option<u32>,
    /// The name of the last aggregate closed, to recognise a repeated closing tag.
    last_closed: Option<&'a str>,
    root: Option<u32>,
    sink: &'s mut S,
    warnings: &'s mut Warnings,
    stray_text_warned: bool,
}

/// Reads the elements of `text` from byte `start` (which is on line `first_line`) and returns what stays in
/// the tree (the root is node 0). Fails on input that cannot be read without guessing, naming the line.
pub(crate) fn build<'a, S: Sink<'a>>(
    text: &'a str,
    start: usize,
    first_line: u32,
    sink: &mut S,
    warnings: &mut Warnings,
) -> Result<Tree<'a>, ParseError> {
    let mut builder = Builder {
        tree: Tree::default(),
        stack: Vec::new(),
        open_leaf: None,
        last_closed: None,
        root: None,
        sink,
        warnings,
        stray_text_warned: false,
    };
    builder.run(text, start, first_line)?;
    Ok(builder.tree)
}

impl<'a, S: Sink<'a>> Builder<'a, '_, S> {
    fn run(&mut self, text: &'a str, start: usize, first_line: u32) -> Result<(), ParseError> {
        let bytes = text.as_bytes();
        let mut pos = start;
        let mut line = first_line;
        while pos < bytes.len() {
            if self.root.is_some() && self.stack.is_empty() {
                // The root has closed: anything but whitespace after it is trailing garbage.
                break;
            }
            let rest = bytes.get(pos..).unwrap_or_default();
            let Some(lt) = memchr(b'<', rest).map(|i| pos + i) else {
                self.text_outside_leaf(text.get(pos..).unwrap_or(""), line);
                line = line.saturating_add(count_lines(rest));
                pos = bytes.len();
                break;
            };
            let between = text.get(pos..lt).unwrap_or("");
            self.text_outside_leaf(between, line);
            line = line.saturating_add(count_lines(between.as_bytes()));
            pos = lt;
            let tag = bytes.get(pos..).unwrap_or_default();
            match tag.get(1) {
                Some(b'!') => {
                    let (terminator, skip): (&[u8], usize) =
                        if tag.starts_with(b"<!--") { (b"-->", 4) } else { (b">", 2) };
                    let end = memmem::find(tag.get(skip..).unwrap_or_default(), terminator)
                        .map(|i| pos + skip + i + terminator.len())
                        .ok_or_else(|| ParseError::at_line(line as usize, "unterminated comment or declaration"))?;
                    line = line.saturating_add(count_lines(bytes.get(pos..end).unwrap_or_default()));
                    pos = end;
                    self.open_leaf = None;
                }
                Some(b'?') => {
                    let end = memmem::find(tag, b"?>")
                        .map(|i| pos + i + 2)
                        .ok_or_else(|| ParseError::at_line(line as usize, "unterminated processing instruction"))?;
                    line = line.saturating_add(count_lines(bytes.get(pos..end).unwrap_or_default()));
                    pos = end;
                }
                Some(b'/') => {
                    let gt = memchr(b'>', tag).ok_or_else(|| ParseError::at_line(line as usize, "unterminated tag"))?;
                    let name = text.get(pos + 2..pos + gt).unwrap_or("").trim();
                    line = line.saturating_add(count_lines(name.as_bytes()));
                    pos += gt + 1;
                    self.close_tag(name, line)?;
                }
                Some(&b) if is_name_byte(b) => {
                    let gt = memchr(b'>', tag).ok_or_else(|| {
                        ParseError::at_line(line as usize, format!("unterminated tag {}", quote_tag(tag)))
                    })?;
                    let inside = text.get(pos + 1..pos + gt).unwrap_or("");
                    let self_closing = inside.ends_with('/');
                    let name_len = inside.bytes().take_while(|&b| is_name_byte(b)).count();
                    let name = inside.get(..name_len).unwrap_or("");
                    let tag_line = line;
                    line = line.saturating_add(count_lines(inside.as_bytes()));
                    pos += gt + 1;
                    // A leaf's value runs to the next `<`.
                    let value_end = memchr(b'<', bytes.get(pos..).unwrap_or_default()).map_or(bytes.len(), |i| pos + i);
                    let raw_value = text.get(pos..value_end).unwrap_or("");
                    let value = raw_value.trim();
                    if self_closing {
                        self.open_element(name, Some(""), tag_line)?;
                    } else if !value.is_empty() {
                        self.open_element(name, Some(value), tag_line)?;
                        line = line.saturating_add(count_lines(raw_value.as_bytes()));
                        pos = value_end;
                    } else {
                        self.open_element(name, None, tag_line)?;
                    }
                }
                _ => {
                    // A `<` that starts no tag: stray text, skipped.
                    self.text_outside_leaf("<", line);
                    pos += 1;
                }
            }
        }
        if self.root.is_some() && self.stack.is_empty() {
            let trailing = text.get(pos..).unwrap_or("");
            if !trailing.trim().is_empty() {
                self.warnings
                    .push(format!("line {line}: ignored {} bytes after the closing </OFX>", trailing.trim_end().len()));
            }
            return Ok(());
        }
        self.finish(line)
    }

    fn text_outside_leaf(&mut self, text: &str, line: u32) {
        if !self.stray_text_warned && !text.trim().is_empty() {
            self.stray_text_warned = true;
            self.warnings.push(format!("line {line}: ignored text outside any value: '{}'", snippet(text.trim())));
        }
    }

    fn open_element(&mut self, name: &'a str, value: Option<&'a str>, line: u32) -> Result<(), ParseError> {
        let parent = self.stack.last().copied();
        if parent.is_none() && self.root.is_some() {
            return Err(ParseError::at_element(line as usize, name, "element after the end of the document"));
        }
        let id = self.tree.push(parent, name, value, line)?;
        if self.root.is_none() {
            self.root = Some(id);
        }
        self.open_leaf = None;
        if value.is_some() {
            if parent.is_none() {
                // A root that is a leaf: nothing more can follow.
                return Err(ParseError::at_element(line as usize, name, "the document is a single value"));
            }
            self.open_leaf = Some(id);
        } else {
            if self.stack.len() >= MAX_DEPTH {
                return Err(ParseError::at_element(line as usize, name, "elements nested too deeply"));
            }
            self.stack.push(id);
        }
        Ok(())
    }

    fn close_tag(&mut self, name: &'a str, line: u32) -> Result<(), ParseError> {
        if let Some(leaf) = self.open_leaf.take()
            && self.tree.name(leaf) == name
        {
            return Ok(());
        }
        if let Some(depth) = self.stack.iter().rposition(|&id| self.tree.name(id) == name) {
            while self.stack.len() > depth + 1 {
                self.close_implicitly(name, line)?;
            }
            return self.close_top();
        }
        if self.stack.is_empty() {
            self.warnings.push(format!("line {line}: ignored stray closing tag </{}>", snippet(name)));
            return Ok(());
        }
        let top = self.stack.last().copied().unwrap_or(NONE);
        if self.tree.recent_children(top).any(|c| self.tree.name(c) == name) || self.last_closed == Some(name) {
            // A closing tag for a leaf read earlier, or one closed twice: harmless.
            return Ok(());
        }
        if !is_known_aggregate(name) {
            self.warnings.push(format!("line {line}: ignored stray closing tag </{}>", snippet(name)));
            return Ok(());
        }
        // Empty SGML leaves still open on top are not what this tag means to close.
        while let Some(&top) = self.stack.last() {
            if self.tree.is_empty(top) && !is_known_aggregate(self.tree.name(top)) {
                self.stack.pop();
                self.tree.make_empty_leaf(self.stack.last().copied(), top);
            } else {
                break;
            }
        }
        let Some(&top) = self.stack.last() else {
            self.warnings.push(format!("line {line}: ignored stray closing tag </{}>", snippet(name)));
            return Ok(());
        };
        self.warnings.push(format!(
            "line {line}: </{}> closes <{}> (line {}); read as if it matched",
            snippet(name),
            snippet(self.tree.name(top)),
            self.tree.line(top)
        ));
        self.close_top()
    }

    /// Closes the top element because an enclosing one is closing.
    fn close_implicitly(&mut self, closing: &str, line: u32) -> Result<(), ParseError> {
        let Some(&top) = self.stack.last() else { return Ok(()) };
        let name = self.tree.name(top);
        if is_known_aggregate(name) {
            self.warnings.push(format!(
                "line {line}: <{}> (line {}) was not closed before </{}>",
                snippet(name),
                self.tree.line(top),
                snippet(closing)
            ));
            self.close_top()
        } else {
            self.stack.pop();
            self.tree.make_empty_leaf(self.stack.last().copied(), top);
            Ok(())
        }
    }

    fn close_top(&mut self) -> Result<(), ParseError> {
        let Some(id) = self.stack.pop() else { return Ok(()) };
        self.open_leaf = None;
        self.last_closed = Some(self.tree.name(id));
        if self.tree.is_empty(id) && !is_known_aggregate(self.tree.name(id)) {
            // `<FITID></FITID>`: an empty leaf, not an aggregate.
            if let Some(node) = self.tree.nodes.get_mut(id as usize) {
                node.value = Some("");
            }
            return Ok(());
        }
        if self.stack.is_empty() {
            return Ok(());
        }
        if self.sink.closed(&self.tree, id, &self.stack)? {
            self.tree.remove_last_subtree(self.stack.last().copied(), id);
        }
        Ok(())
    }

    fn finish(&mut self, line: u32) -> Result<(), ParseError> {
        if self.root.is_none() {
            return Err(ParseError::at_line(line as usize, "no OFX element found"));
        }
        // Empty SGML leaves at the very end are not what is missing.
        while let Some(&top) = self.stack.last() {
            if self.tree.has_children(top) || is_known_aggregate(self.tree.name(top)) {
                break;
            }
            self.stack.pop();
            self.tree.make_empty_leaf(self.stack.last().copied(), top);
        }
        match self.stack.last() {
            Some(&open) => Err(ParseError::at_element(
                line as usize,
                self.tree.name(open),
                format!("the file ends before this element (opened on line {}) is closed", self.tree.line(open)),
            )),
            None => Ok(()),
        }
    }
}

fn quote_tag(tag: &[u8]) -> String {
    let shown = tag.get(..tag.len().min(30)).unwrap_or_default();
    format!("'{}'", snippet(&String::from_utf8_lossy(shown)))
}
