//! Temporary naive topic matcher (replaced by the trie).
use std::collections::HashSet;
use std::hash::Hash;

/// Topic bindings.
#[derive(Debug)]
pub struct TopicTrie<T> {
    bindings: Vec<(String, T)>,
}

impl<T: Clone + Eq + Hash> Default for TopicTrie<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn matches(p: &[&str], k: &[&str]) -> bool {
    match (p.first(), k.first()) {
        (None, None) => true,
        (Some(&"#"), _) => matches(&p[1..], k) || (!k.is_empty() && matches(p, &k[1..])),
        (Some(&"*"), Some(_)) => matches(&p[1..], &k[1..]),
        (Some(a), Some(b)) if a == b => matches(&p[1..], &k[1..]),
        _ => false,
    }
}

impl<T: Clone + Eq + Hash> TopicTrie<T> {
    /// New empty set.
    pub fn new() -> Self {
        TopicTrie {
            bindings: Vec::new(),
        }
    }
    /// Adds a binding.
    pub fn insert(&mut self, key: &str, dest: T) -> bool {
        if self.bindings.iter().any(|(k, d)| k == key && *d == dest) {
            return false;
        }
        self.bindings.push((key.to_string(), dest));
        true
    }
    /// Removes a binding.
    pub fn remove(&mut self, key: &str, dest: &T) -> bool {
        let n = self.bindings.len();
        self.bindings.retain(|(k, d)| !(k == key && d == dest));
        n != self.bindings.len()
    }
    /// Routes.
    pub fn route(&self, key: &str, mut f: impl FnMut(&T)) {
        let kw: Vec<&str> = key.split('.').collect();
        let mut seen = HashSet::new();
        for (p, d) in &self.bindings {
            let pw: Vec<&str> = p.split('.').collect();
            if matches(&pw, &kw) && seen.insert(d.clone()) {
                f(d);
            }
        }
    }
    /// Removes all bindings to dest.
    pub fn remove_dest(&mut self, dest: &T) -> usize {
        let n = self.bindings.len();
        self.bindings.retain(|(_, d)| d != dest);
        n - self.bindings.len()
    }
    /// True if no bindings.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
    /// Number of bindings.
    pub fn len(&self) -> usize {
        self.bindings.len()
    }
}
